"""The benchmarks' quick modes, end to end, so that they keep working (no timing is asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import receive_bench, submit_bench, web_bench  # noqa: E402
from bench.__main__ import summary_rows  # noqa: E402


def test_submit_and_receive_quick(tmp_path):
    submit = submit_bench.run(quick=True, processes=2, out=tmp_path / "submit.json")
    assert submit["acknowledged"] > 0 and submit["errors"] == 0
    assert submit["stored"] == submit["acknowledged"]  # every acknowledged job is in the store
    assert submit["echo_rps"] > 0 and submit["rainbow_rps"] > 0

    receive = receive_bench.run(quick=True, out=tmp_path / "receive.json")
    assert receive["all_received"]
    assert (tmp_path / "submit.json").exists() and (tmp_path / "receive.json").exists()

    rows = summary_rows({"submit": submit, "receive": receive})
    assert [row[0] for row in rows][:3] == [
        "submit throughput (32 clients)", "submit latency median / p99", "receive + accept 1,000 jobs"]


def test_web_quick(tmp_path):
    web = web_bench.run(quick=True, jobs=5_000, out=tmp_path / "web.json")
    assert web["pages"]["first page"]["rows"] == 50 and web["pages"]["page 21"]["rows"] == 50
    assert web["pages"]["name exact"]["rows"] == 1
    assert len(web["viewers"]["with_rps"]) == len(web["viewers"]["without_rps"]) == 2
    assert all(n > 0 for n in web["viewers"]["batches_delivered"])
    assert summary_rows({"web": web})[0][0] == "dashboard job pages, 5,000 jobs"
