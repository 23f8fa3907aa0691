"""``rainbow workflow submit | status | cancel`` and ``rainbow submit --dependency`` as subprocesses against a
server process."""

from __future__ import annotations

import re

from test_batch_cli import registered
from test_cli import address, rainbow  # noqa: F401 - the CLI tests' fixtures

WORKFLOW = """\
name: diamond
steps:
  simulate:
    command: ./simulate --out run1
    nodes: 2
  post:
    command: ./post run1
    needs: simulate
  plot:
    command: ./plot run1
    needs:
      simulate: afterany
  archive:
    command: ./archive run1
    needs: [post, plot]
"""


def test_workflow_submit_status_and_cancel(address, rainbow, tmp_path):  # noqa: F811 - the fixture
    config = registered(rainbow, address, tmp_path)
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = rainbow("workflow", "submit", str(tmp_path / "wf.yaml"), "--config-path", config).stdout
    found = re.match(r"Submitted workflow ([0-9a-f]{16}) \(diamond\): 4 steps\n", out)
    assert found, out
    workflow = found.group(1)
    first = int(re.search(r"simulate  job (\d+)", out).group(1))
    assert out.splitlines()[1:] == [
        f"  simulate  job {first}  assigned to keebler",
        f"  post      job {first + 1}  depend: waits for afterok:{first}",
        f"  plot      job {first + 2}  depend: waits for afterany:{first}",
        f"  archive   job {first + 3}  depend: waits for afterok:{first + 1}, afterok:{first + 2}",
    ]
    drawn = rainbow("workflow", "status", workflow, "--config-path", config).stdout
    assert drawn.splitlines() == [
        f"Workflow {workflow} (diamond): 4 steps: 1 assigned, 3 depend",
        f"layer 1  ◌ simulate  assigned   keebler     job {first}",
        "           ├─▶ post (afterok)",
        "           └─▶ plot (afterany)",
        f"layer 2  ○ post      depend     -           job {first + 1}",
        "           └─▶ archive (afterok)",
        f"         ○ plot      depend     -           job {first + 2}",
        "           └─▶ archive (afterok)",
        f"layer 3  ○ archive   depend     -           job {first + 3}",
    ]
    data = rainbow.json("workflow", "status", workflow, "--config-path", config)
    assert [(s["name"], s["job"]["state"], s["needs"]) for s in data["steps"]] == [
        ("simulate", "assigned", []), ("post", "depend", [["simulate", "afterok"]]),
        ("plot", "depend", [["simulate", "afterany"]]),
        ("archive", "depend", [["post", "afterok"], ["plot", "afterok"]])]
    status = rainbow("status", str(first + 3), "--config-path", config).stdout
    assert status.startswith(f"Job {first + 3} (archive) (not placed yet): depend\n")
    assert f"  depends:  afterok:{first + 1}, afterok:{first + 2}\n" in status
    assert f"  workflow: {workflow} (step archive)\n" in status

    out = rainbow("workflow", "cancel", workflow, "--config-path", config).stdout
    assert out == (f"Workflow {workflow}: 4 steps cancelled, 0 more will be cancelled by their clusters on their "
                   "next contact.\n")
    assert {s["job"]["state"] for s in rainbow.json("workflow", "status", workflow, "--config-path", config)["steps"]
            } == {"cancelled"}


def test_submit_with_dependency_and_refusals(address, rainbow, tmp_path):  # noqa: F811 - the fixture
    config = registered(rainbow, address, tmp_path)
    first = rainbow.json("submit", "--command", "sleep 100", "--config-path", config)["jobid"]
    out = rainbow("submit", "--command", "true", "--dependency", f"afterok:{first}", "--dependency",
                  f"afternotok:{first}", "--config-path", config).stdout
    assert re.fullmatch(rf"Submitted job \d+ \(true\): waits for afterok:{first}, afternotok:{first} and is placed "
                        r"when they are satisfied \(1 of 1 clusters matched now\)\n", out), out
    jobs = rainbow("jobs", "--state", "depend", "--config-path", config).stdout
    assert re.search(r"\n\d+\s+true\s+-\s+depend\s", jobs), jobs

    refused = rainbow("submit", "--command", "true", "--dependency", "afterok:424242", "--config-path", config,
                      code=1)
    assert "unknown job 424242" in refused.stderr
    (tmp_path / "cycle.yaml").write_text("steps:\n  a: {command: x, needs: b}\n  b: {command: y, needs: a}\n")
    refused = rainbow("workflow", "submit", str(tmp_path / "cycle.yaml"), "--config-path", config, code=1)
    assert refused.stderr == "rainbow: error: steps: the needs form a cycle: a needs b needs a\n"
    usage = rainbow("submit", "--cc", "1-2", "--command", "x", "--dependency", f"afterok:{first}",
                    "--config-path", config, code=2)
    assert "--dependency" in usage.stderr
