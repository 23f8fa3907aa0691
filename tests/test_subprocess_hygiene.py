"""Tests that start this Python on `rainbow` run the rainbow under test, not whatever copy is installed."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
LAUNCHERS = {"run", "Popen", "check_output", "check_call", "call"}


def _starts_this_python(call: ast.Call) -> bool:
    if not (isinstance(call.func, ast.Attribute) and call.func.attr in LAUNCHERS
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "subprocess"):
        return False
    if not call.args or not isinstance(call.args[0], ast.List) or not call.args[0].elts:
        return False
    first = call.args[0].elts[0]
    return isinstance(first, ast.Attribute) and ast.unparse(first) == "sys.executable"


def test_every_python_subprocess_gets_the_source_tree_on_its_path():
    unsafe = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _starts_this_python(node):
                env = next((k.value for k in node.keywords if k.arg == "env"), None)
                if env is None or "subprocess_env(" not in ast.unparse(env):
                    unsafe.append(f"{path.name}:{node.lineno}")
    assert unsafe == [], f"pass env=subprocess_env(...) to these subprocesses: {unsafe}"
