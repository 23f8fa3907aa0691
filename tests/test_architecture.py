"""What may import what (docs/architecture.md): rainbow's rooms import one way, with no cycle.

Every ``import`` in ``src/rainbow`` counts, those inside functions too (a lazy
import is still a dependency). A module belongs to the room of its subpackage
(``rainbow.agent.core`` -> ``agent``) or, at the top level, to its own room
(``rainbow.scheduler`` -> ``scheduler``); entry points (programs and modules a
host loads) form the ``entry`` room, which may import anything and which no
library module imports.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rainbow"

# Programs (``python -m``, console scripts) and modules a host loads (the Flux broker module).
ENTRY_POINTS = {
    "rainbow.__main__",
    "rainbow.cli",
    "rainbow.demo",
    "rainbow.register",
    "rainbow.submit",
    "rainbow.agent.__main__",
    "rainbow.agent.command",
    "rainbow.server.command",
    "rainbow.flux.module",
    "rainbow.flux.register",
    "rainbow.flux.submit",
    # options of those programs from environment variables (containers)
    "rainbow.environment",
}
ENTRY_PACKAGES = ("rainbow.commands",)

# Plain data, errors and parsers every room may use.
FOUNDATION = {"rainbow", "version", "errors", "limits", "lifecycle", "credentials", "config", "jobspec", "jgf",
              "hostlists", "constraints", "durations", "queues", "oidc", "dependencies", "workflow",
              "protos", "fairshare"}

ALLOWED: dict[str, set[str]] = {
    **{room: set(FOUNDATION) for room in FOUNDATION},
    "graph": FOUNDATION,
    "selection": FOUNDATION,
    "store": FOUNDATION,
    "scheduler": FOUNDATION | {"graph", "selection", "store"},
    "server": FOUNDATION | {"scheduler", "store", "graph"},
    "client": FOUNDATION,
    "agent": FOUNDATION | {"client"},
    "flux": FOUNDATION | {"agent", "client"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def room_of(module: str) -> str:
    if module in ENTRY_POINTS or any(module == p or module.startswith(p + ".") for p in ENTRY_PACKAGES):
        return "entry"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(module: str, path: Path, known: Mapping[str, Path]) -> Iterator[tuple[str, int]]:
    """(rainbow module imported, line) for every import statement of ``module``, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("rainbow"):
                yield name, node.lineno


def room_graph() -> dict[tuple[str, str], list[str]]:
    """(importing room, imported room) -> the import sites that make the arrow."""
    known = modules()
    arrows: dict[tuple[str, str], list[str]] = {}
    for module, path in known.items():
        for target, line in imports(module, path, known):
            a, b = room_of(module), room_of(target)
            if a != b:
                arrows.setdefault((a, b), []).append(f"{path.relative_to(SRC)}:{line} imports {target}")
    return arrows


def find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """A cycle of the directed graph as a path ``[a, b, ..., a]``, or None."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in succ.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(succ):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_checker_sees_imports_and_cycles():
    arrows = room_graph()
    assert ("flux", "agent") in arrows  # the Flux executor implements the agent's Executor
    assert ("entry", "server") in arrows
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"), ("b", "c"), ("a", "c")}) is None


def test_no_import_cycle_between_rooms():
    arrows = room_graph()
    cycle = find_cycle(set(arrows))
    if cycle:
        sites = [site for a, b in itertools.pairwise(cycle) for site in arrows[(a, b)]]
        pytest.fail(f"import cycle {' -> '.join(cycle)}:\n" + "\n".join(sites))


def test_every_module_has_a_room():
    unplaced = sorted(m for m in modules() if room_of(m) not in ALLOWED and room_of(m) != "entry")
    assert unplaced == [], "give these modules a room in ALLOWED (and docs/architecture.md)"


def test_rooms_import_only_downwards():
    wrong = [site for (a, b), sites in sorted(room_graph().items())
             if a != "entry" and b not in ALLOWED.get(a, set()) for site in sites]
    assert wrong == [], "imports against the direction of docs/architecture.md"


def test_agent_and_its_local_executor_do_not_need_the_flux_adapter():
    known = modules()
    for module in ("rainbow.agent.core", "rainbow.agent.local", "rainbow.agent.convert", "rainbow.agent.hooks"):
        targets = {target for target, _ in imports(module, known[module], known)}
        assert not [t for t in targets if room_of(t) == "flux"], module


# Inside the scheduler (docs/architecture.md, "Inside the scheduler"): what each module may import of the others.
SCHEDULER_MODULES: dict[str, set[str]] = {
    "context": set(),
    "text": set(),
    "validation": set(),
    "registry": {"context", "text", "validation"},
    "authorization": {"context", "registry", "validation"},
    "placement": {"context", "registry"},
    "submission": {"context", "placement", "registry", "validation"},
    "lifecycle": {"context", "placement", "registry", "text", "validation"},
    "batches": {"context", "placement", "submission", "validation"},
    "users": {"context", "registry", "validation"},
    "accounts": {"context", "validation"},
    "dependents": {"authorization", "context", "placement", "registry", "validation"},
    "workflows": {"authorization", "batches", "context", "dependents", "placement", "submission", "validation"},
}


def test_scheduler_modules_import_one_way():
    known = modules()
    wrong = []
    for module, path in known.items():
        if not module.startswith("rainbow.scheduler."):
            continue
        own = module.removeprefix("rainbow.scheduler.")
        if own == "core":
            continue  # the facade composes them all
        assert own in SCHEDULER_MODULES, f"give {module} its place in SCHEDULER_MODULES"
        for target, line in imports(module, path, known):
            if target.startswith("rainbow.scheduler"):
                imported = target.removeprefix("rainbow.scheduler").lstrip(".")
                if imported not in SCHEDULER_MODULES[own]:
                    wrong.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert wrong == []


def test_credentials_are_checked_only_by_authorization():
    """Every check of a secret or token goes through rainbow.scheduler.authorization (the users issue widens it)."""
    checks = {"check_secret", "compare_digest"}
    callers = set()
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in checks:
                    callers.add(module)
    assert callers == {"rainbow.scheduler.authorization", "rainbow.credentials"}, sorted(callers)


def test_signed_tokens_are_checked_only_by_authorization():
    """An OIDC JWT is a credential too: only authorization decodes (verifies) one."""
    callers = set()
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "decode"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "jwt"):
                callers.add(module)
    assert callers == {"rainbow.scheduler.authorization"}
