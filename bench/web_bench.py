"""The dashboard under load: job pages with 1,000,000 jobs in the store, and SubmitJob with 50 live viewers.

Pages: a SQLite store with 10 clusters and 1,000,000 jobs (90% completed, 5%
running, 1% failed, the rest waiting) behind ``rainbow server --web``; a viewer
signed in with the global token (who sees every cluster) asks for the first
page, filtered pages (by state, cluster, name, name prefix), a page sorted by
name and a page deep into the table (through its ``next`` link). The figure is
the server's own time per page (its ``Server-Timing`` header), target < 200 ms.

Viewers: SubmitJob throughput (the submit benchmark's load: 32 clients, every
request listing the 10 clusters) with no dashboard viewer and with 50 viewers
holding the live stream (``/events``) open, alternating in the same run. Target:
the viewers lower throughput by no more than 10%.

``python -m bench.web_bench [--quick]``; results in bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import multiprocessing as mp
import re
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import TOKEN, rainbow_server, summary_ms, verdict, write_results
from bench.load import SUBMIT_METHOD, run_load
from bench.queue_scale_bench import CLUSTERS, build_store
from bench.submit_bench import submit_payloads

TARGET_MS = 200.0
VIEWERS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sign_in(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/signin", body=urlencode({"token": TOKEN, "next": "/"}),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    cookie = next(h for h in response.headers.get_all("Set-Cookie") or [] if h.startswith("rainbow_session="))
    connection.close()
    return cookie.split(";", 1)[0]


def fetch(port: int, cookie: str, path: str) -> tuple[float, float, str]:
    """(server ms from Server-Timing, wall ms, body) of one page."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request("GET", path, headers={"Cookie": cookie})
    response = connection.getresponse()
    body = response.read().decode()
    wall = (time.perf_counter() - started) * 1000
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {body[:200]}")
    timing = dict(re.findall(r"(\w+);dur=([\d.]+)", response.getheader("Server-Timing", "")))
    return float(timing["total"]), wall, body


def shape_store(db: Path, total: int) -> None:
    """Spread the fixture's finished jobs over completed, running and failed."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as sql:
        sql.execute("UPDATE jobs SET state = 'running' WHERE id % 20 = 3 AND state = 'completed'")
        sql.execute("UPDATE jobs SET state = 'failed', exit_code = 1 WHERE id % 100 = 7 AND state = 'completed'")
        sql.execute("ANALYZE")


def pages(quick: bool, jobs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"jobs": jobs}
    with tempfile.TemporaryDirectory(prefix="rainbow-web-") as tmp:
        db = Path(tmp) / "web.db"
        out["build_s"] = build_store(db, jobs, measured=0)
        shape_store(db, jobs)
        port = free_port()
        with rainbow_server(db, "--web", f"127.0.0.1:{port}"):
            cookie = sign_in(port)
            deep = "/jobs"
            for _ in range(20):  # 20 pages in: the keyset cursor of page 21
                found = re.search(r'href="([^"]+)" id="next"', fetch(port, cookie, deep)[2])
                assert found, "no next page"
                deep = found.group(1).replace("&amp;", "&")
            cases = {
                "first page": "/jobs",
                "state=running": "/jobs?state=running",
                "state=failed": "/jobs?state=failed",
                "cluster=cluster-02": "/jobs?cluster=cluster-02",
                "cluster + state": "/jobs?cluster=cluster-02&state=running",
                "name exact": f"/jobs?name=old-{jobs // 2}",
                "name prefix": "/jobs?name=old-99*",
                "sorted by name": "/jobs?sort=name&dir=asc",
                "page 21": deep,
            }
            # The overview counts jobs by cluster and state (a scan of an index), then keeps the counts a while.
            first, _, _ = fetch(port, cookie, "/")
            cached, _, _ = fetch(port, cookie, "/")
            out["overview"] = {"counting_ms": first, "cached_ms": cached}
            print(f"  overview: {first:.1f} ms counting the jobs, {cached:.1f} ms with the counts kept", flush=True)
            repeats = 5 if quick else 20
            for label, path in cases.items():
                server, wall = [], []
                rows = 0
                for _ in range(repeats):
                    s, w, body = fetch(port, cookie, path)
                    server.append(s)
                    wall.append(w)
                    rows = body.count("data-job=")
                out[label] = {"path": path, "rows": rows, "server": summary_ms([x / 1000 for x in server]),
                              "wall": summary_ms([x / 1000 for x in wall])}
                print(f"  {label:20s} {rows:3d} rows: server median {out[label]['server']['median_ms']:6.1f} ms, "
                      f"p99 {out[label]['server']['p99_ms']:6.1f} ms (wall median "
                      f"{out[label]['wall']['median_ms']:.1f} ms)", flush=True)
    return out


async def _hold_streams(port: int, cookie: str, count: int, ready: Any, stop: Any, result: Any) -> None:
    import aiohttp

    batches = 0  # batches of job states received (counted cheaply: the viewers share the machine with the server)
    connected = 0

    async def viewer(session: aiohttp.ClientSession) -> None:
        nonlocal batches, connected
        async with session.get(f"http://127.0.0.1:{port}/events", headers={"Cookie": cookie}) as response:
            assert response.status == 200
            connected += 1
            if connected == count:
                ready.set()
            async for chunk in response.content.iter_any():
                batches += chunk.count(b"event: states\n")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.create_task(viewer(session)) for _ in range(count)]
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.put(batches)


def _viewers_main(port: int, cookie: str, count: int, ready: Any, stop: Any, result: Any) -> None:
    asyncio.run(_hold_streams(port, cookie, count, ready, stop, result))


def viewers(quick: bool, duration: float | None = None) -> dict[str, Any]:
    duration = duration or (3.0 if quick else 6.0)
    rounds = 2 if quick else 4
    out: dict[str, Any] = {"viewers": VIEWERS, "duration_s": duration, "rounds": rounds}
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="rainbow-web-") as tmp:
        db = Path(tmp) / "submit.db"
        build_store(db, 0, measured=0)
        port = free_port()
        payloads = submit_payloads(CLUSTERS)
        without, with_viewers, delivered = [], [], []
        with rainbow_server(db, "--web", f"127.0.0.1:{port}") as server:
            cookie = sign_in(port)
            for r in range(rounds):
                for watched in ((False, True) if r % 2 == 0 else (True, False)):
                    process = None
                    if watched:
                        ready, stop, result = ctx.Event(), ctx.Event(), ctx.Queue()
                        process = ctx.Process(target=_viewers_main, args=(port, cookie, VIEWERS, ready, stop, result),
                                              daemon=True)
                        process.start()
                        if not ready.wait(60):
                            raise RuntimeError("the viewers did not connect")
                    load = run_load(server.address, payloads, method=SUBMIT_METHOD, duration=duration)
                    if process is not None:
                        stop.set()
                        delivered.append(result.get(timeout=60))
                        process.join(30)
                    (with_viewers if watched else without).append(load.rps)
                    print(f"  round {r + 1}, {'50 viewers' if watched else 'no viewer '}: {load.rps:,.0f} jobs/s "
                          f"({load.errors} errors)", flush=True)
    out.update({
        "without_rps": without,
        "with_rps": with_viewers,
        "batches_delivered": delivered,
        "ratio": statistics.median(with_viewers) / statistics.median(without),
    })
    return out


def run(quick: bool = False, jobs: int | None = None, out: Path | None = None,
        viewer_seconds: float | None = None) -> dict[str, Any]:
    jobs = jobs or (50_000 if quick else 1_000_000)
    results: dict[str, Any] = {"quick": quick}
    print(f"web: job pages with {jobs:,} jobs in the store", flush=True)
    results["pages"] = pages(quick, jobs)
    print(f"web: SubmitJob with and without {VIEWERS} live viewers", flush=True)
    results["viewers"] = viewers(quick, viewer_seconds)
    worst = max(v["server"]["median_ms"] for v in results["pages"].values() if isinstance(v, dict) and "server" in v)
    results["worst_page_median_ms"] = worst
    results["targets"] = {
        "pages_under_200_ms": worst < TARGET_MS,
        "viewers_cost_at_most_10_percent": results["viewers"]["ratio"] >= 0.9,
    }
    print(f"web: slowest page (median server time) {worst:.1f} ms "
          f"[{verdict(results['targets']['pages_under_200_ms'])}]; throughput with {VIEWERS} viewers "
          f"x{results['viewers']['ratio']:.2f} [{verdict(results['targets']['viewers_cost_at_most_10_percent'])}]")
    write_results("web", results, out)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="50,000 jobs and shorter rounds")
    parser.add_argument("--jobs", type=int, help="jobs in the store for the page figures")
    args = parser.parse_args(argv)
    run(args.quick, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
