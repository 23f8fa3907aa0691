"""Hooks named after Flux jobtap topics; and `rainbow.flux` (hooks included) imports without Flux."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rainbow.flux import TOPICS, HookJob, Hooks, Reject
from rainbow.flux import hooks as default_hooks

from conftest import subprocess_env


def job(**fields) -> HookJob:
    spec = {"resources": [{"type": "node", "count": 2, "with": []}],
            "tasks": [{"command": ["app", "-x"], "slot": "task", "count": {"per_slot": 1}}],
            "attributes": {"system": {"duration": 0.0}}}
    return HookJob(**{"jobid": 5, "cluster": "tioga", "name": "app", "jobspec": spec, **fields})


def test_validate_may_rewrite_in_place_or_by_returning_a_dict():
    hooks = Hooks()

    @hooks.on("job.validate")
    def queue(j):
        j.jobspec["attributes"]["system"]["queue"] = "pbatch"

    hooks.on("job.validate", lambda j: {**j.jobspec, "tasks": [{**j.jobspec["tasks"][0], "command": ["other"]}]})
    result = hooks.validate(job())
    assert result.jobspec["attributes"]["system"]["queue"] == "pbatch"
    assert result.command == ["other"] and result.nodes == 2


@pytest.mark.parametrize(("hook", "message"), [
    (lambda j: (_ for _ in ()).throw(Reject("too big for us")), "too big for us"),
    (lambda j: False, "rejected by hook"),
    (lambda j: 1 / 0, "failed: division by zero"),
])
def test_validate_rejects(hook, message):
    hooks = Hooks()
    hooks.on("job.validate", hook)
    with pytest.raises(Reject, match=message):
        hooks.validate(job())


def test_observers_see_states_in_jobtap_order_and_never_break_the_agent():
    hooks, seen = Hooks(), []
    hooks.on("job.state.*", lambda j: seen.append((j.topic, j.state)))
    hooks.on("job.inactive", lambda j: seen.append((j.topic, j.exit_code)))
    hooks.on("*", lambda j: 1 / 0)
    j = job(local_id="ƒJjtQaK")
    hooks.emit("job.new", j)
    for state in ("submitted", "running"):
        j.state = state
        hooks.emit_state(j)
    j.state, j.exit_code = "failed", 3
    hooks.emit_state(j)
    assert seen == [("job.state.sched", "submitted"), ("job.state.run", "running"),
                    ("job.state.cleanup", "failed"), ("job.state.inactive", "failed"), ("job.inactive", 3)]


def test_topics_patterns_and_removal():
    hooks = Hooks()
    with pytest.raises(ValueError, match="unknown hook topic"):
        hooks.on("job.typo", print)
    func = hooks.on("job.state.*", lambda j: None)
    assert hooks.for_topic("job.state.run") == [func] and hooks.for_topic("job.new") == []
    hooks.remove(func)
    assert len(hooks) == 0
    assert "job.validate" in TOPICS and "job.inactive" in TOPICS


def test_load_hooks_from_a_file_both_styles(tmp_path):
    decorated = tmp_path / "decorated.py"
    decorated.write_text(textwrap.dedent("""
        from rainbow.flux import Reject, hook

        @hook("job.validate")
        def no_rm(job):
            if job.command[:1] == ["rm"]:
                raise Reject("no rm here")
    """))
    explicit = tmp_path / "explicit.py"
    explicit.write_text("def register(hooks):\n    hooks.on('job.new', lambda job: job.extra.update(seen=True))\n")
    try:
        default_hooks.load(decorated)
        with pytest.raises(Reject, match="no rm here"):
            default_hooks.validate(job(jobspec={"tasks": [{"command": ["rm", "-rf"]}]}))
    finally:
        default_hooks.clear()
    mine = Hooks()
    mine.load(explicit)
    j = job()
    mine.emit("job.new", j)
    assert j.extra == {"seen": True}
    with pytest.raises(FileNotFoundError):
        mine.load(tmp_path / "missing.py")


def test_nothing_but_the_adapter_imports_flux():
    code = ("import sys; import rainbow, rainbow.flux, rainbow.flux.hooks, rainbow.flux.convert, "
            "rainbow.flux.resources, rainbow.flux.adapter, rainbow.flux.module, rainbow.agent, rainbow.cli, "
            "rainbow.demo, rainbow.register, rainbow.server, rainbow.client; "
            "assert not [m for m in sys.modules if m == 'flux' or m.startswith('flux.')], 'flux imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=subprocess_env())
