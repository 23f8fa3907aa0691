"""With a real Flux: a workflow's second step is released when the first completes in Flux, runs in Flux too, and
reads the first step's Flux job id from RAINBOW_DEPENDS; ``rainbow.submit --dependency`` (flux submit's own option)
waits for a rainbow job. Skipped where `flux` is not on PATH."""

from __future__ import annotations

import json

import pytest
from test_flux_real import flux_python, in_flux, job_info, server, submitted_ids  # noqa: F401 - fixtures

pytestmark = pytest.mark.flux

WORKFLOW = """\
name: two-steps
steps:
  first:
    command: sh -c 'echo first'
  second:
    command: sh -c 'printf "%s" "$RAINBOW_DEPENDS" > depends.json'
    needs: first
"""


def test_a_released_step_runs_in_flux_and_finds_its_parent(flux_python, server, tmp_path):  # noqa: F811
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out, _ = in_flux("""
        flux python -m rainbow.register --host $HOST --secret $SECRET --config-path $CFG --save --cluster-name fluxy
        flux python -m rainbow workflow submit wf.yaml --config-path $CFG --json > submitted.json
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        flux queue drain
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        flux queue drain
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        SECOND=$(flux python -c 'import json; print(json.load(open("submitted.json"))["steps"][1]["job"]["id"])')
        flux python -m rainbow.submit --config-path $CFG -n1 --job-name=third --dependency=afterok:$SECOND true
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        flux queue drain
        flux python -m rainbow.agent --config-path $CFG --once --workdir $PWD
        echo "FLUXJOBS"
        flux jobs -a --no-header -o '{id.f58} {name} {result}'
    """, tmp_path, server)
    submitted = json.loads((tmp_path / "submitted.json").read_text())
    first, second = (step["job"]["id"] for step in submitted["steps"])
    assert [step["job"]["state"] for step in submitted["steps"]] == ["assigned", "depend"]
    parent = job_info(server, tmp_path / "cfg.yaml", first)
    child = job_info(server, tmp_path / "cfg.yaml", second)
    assert (parent.state, child.state) == ("completed", "completed")
    assert parent.local_id.startswith("ƒ") and child.local_id.startswith("ƒ")
    history = [h.state for h in child.history]
    assert history[:2] == ["depend", "assigned"]
    flux_jobs = dict(line.split(" ", 1) for line in out.split("FLUXJOBS\n")[1].splitlines())
    assert flux_jobs[child.local_id] == "second COMPLETED"
    # flux submit's own --dependency (RFC 26 URI -> attributes.system.dependencies) waits for a rainbow job.
    (third,) = submitted_ids(out)
    info = job_info(server, tmp_path / "cfg.yaml", third)
    assert info.state == "completed" and [h.state for h in info.history][:2] == ["depend", "assigned"]
    assert list(info.dependencies) == [f"afterok:{second}"]
    (depends,) = json.loads((tmp_path / "depends.json").read_text())
    assert depends == {"id": first, "name": "first", "step": "first", "cluster": "fluxy",
                       "local_id": parent.local_id, "state": "completed", "scheme": "afterok"}
