"""The dashboard over HTTP: every route with every kind of credential, CSRF, sessions, bad input."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from web_helpers import Cluster, Site, register

from rainbow.errors import InvalidArgument

from conftest import BOTH_STORES, REGISTRATION_SECRET, subprocess_env

pytest.importorskip("aiohttp")
GLOBAL_TOKEN = "the-global-token-of-this-test"


@dataclass
class Setup:
    """Two servers: one with a token per cluster, one with a global token; a job on each cluster."""

    site: int  # the dashboard port of the server with per-cluster tokens
    keebler: Cluster
    tioga: Cluster
    jobs: dict[str, int]
    global_site: int
    global_jobs: dict[str, int]


@pytest.fixture
def setup(server_factory, tmp_path) -> Setup:
    server = server_factory(web="127.0.0.1:0")
    tioga = register(server.address, tmp_path, "tioga")
    keebler = register(server.address, tmp_path, "keebler")
    jobs = {"tioga": tioga.submit(["true"], name="job-of-tioga"),
            "keebler": keebler.submit(["true"], name="job-of-keebler")}
    other = server_factory(tmp_path / "global.db", web="127.0.0.1:0", global_token=GLOBAL_TOKEN)
    (tmp_path / "g").mkdir()
    gt = register(other.address, tmp_path / "g", "tioga")
    gk = register(other.address, tmp_path / "g", "keebler")
    assert gt.token == gk.token == GLOBAL_TOKEN
    global_jobs = {"tioga": gt.submit(["true"], name="job-of-tioga"),
                   "keebler": gk.submit(["true"], name="job-of-keebler")}
    yield Setup(server.server.web_port, keebler, tioga, jobs, other.server.web_port, global_jobs)
    for cluster in (keebler, tioga, gt, gk):
        cluster.client.close()


CREDENTIALS = ["anonymous", "wrong", "cluster", "other-cluster", "global"]


def viewer(setup: Setup, credential: str) -> tuple[Site, dict[str, int]]:
    """A client signed in with ``credential`` (or not), and the job ids of the server it talks to.

    The viewer's own cluster is keebler; "other-cluster" holds tioga's token.
    """
    if credential == "global":
        site = Site(setup.global_site)
        assert site.sign_in(GLOBAL_TOKEN).status == 303
        return site, setup.global_jobs
    site = Site(setup.site)
    if credential == "wrong":
        reply = site.sign_in("not-a-token-of-anything")
        assert reply.status == 403 and "opens no cluster" in reply.text and not site.cookie
    elif credential == "cluster":
        assert site.sign_in(setup.keebler.token).status == 303
    elif credential == "other-cluster":
        assert site.sign_in(setup.tioga.token).status == 303
    return site, setup.jobs


def sees(credential: str, cluster: str) -> bool:
    return credential == "global" or (credential, cluster) in {("cluster", "keebler"), ("other-cluster", "tioga")}


SIGNED_IN = ("cluster", "other-cluster", "global")


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("path", ["/", "/jobs", "/jobs?state=assigned", "/jobs?cluster=keebler&sort=name&dir=asc"])
def test_listing_pages_show_exactly_the_clusters_the_credential_opens(setup, credential, path):
    site, jobs = viewer(setup, credential)
    reply = site.get(path)
    if credential not in SIGNED_IN:
        assert reply.status == 303 and reply.location.startswith("/signin?next=")
        return
    assert reply.status == 200
    for cluster in ("keebler", "tioga"):
        shown = f'data-job="{jobs[cluster]}"' in reply.text if path.startswith("/jobs") else \
            f'data-cluster="{cluster}"' in reply.text
        wanted = sees(credential, cluster) and ("cluster=keebler" not in path or cluster == "keebler")
        assert shown == wanted, (cluster, reply.text)


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("cluster", ["keebler", "tioga"])
def test_job_and_cluster_pages_open_only_for_the_credential_that_opens_them(setup, credential, cluster):
    site, jobs = viewer(setup, credential)
    job = site.get(f"/jobs/{jobs[cluster]}")
    page = site.get(f"/clusters/{cluster}")
    if credential not in SIGNED_IN:
        assert job.status == page.status == 303
        assert unquote(job.location) == f"/signin?next=/jobs/{jobs[cluster]}"
        return
    if sees(credential, cluster):
        assert job.status == 200 and f"job-of-{cluster}" in job.text and "Why it went to" in job.text
        assert f"Selection <b>random</b> chose <b>{cluster}</b>" in job.text
        assert page.status == 200 and "Classes of nodes" in page.text and "12 core, 1 socket" in page.text
    else:
        assert job.status == 403 and f"job-of-{cluster}" not in job.text
        assert page.status == 404


def read_stream(site: Site, path: str, until) -> list[tuple[str, dict]]:
    """(event, data) of a live stream replayed from the start, until ``until(events)`` holds."""
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    connection.request("GET", path, headers={"Cookie": site.cookie, "Last-Event-ID": "0"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    events: list[tuple[str, dict]] = []
    kind = ""
    try:
        while not until(events):
            line = response.fp.readline().decode()
            assert line, "the stream ended"
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    finally:
        connection.close()
    return events


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_the_live_stream_carries_only_the_jobs_the_credential_may_watch(setup, credential):
    site, jobs = viewer(setup, credential)
    if credential not in SIGNED_IN:
        assert site.get("/events").status == 401
        assert site.get(f"/events?job={jobs['keebler']}").status == 401
        return
    # Replayed from the start: tioga's job was submitted before keebler's.
    visible = sorted(jobs[c] for c in jobs if sees(credential, c))

    def shown(events):
        return sorted({int(i) for kind, data in events if kind == "states" for i in data})

    events = read_stream(site, "/events", lambda e: shown(e)[-1:] == visible[-1:]
                         and any(k == "counts" for k, _ in e))
    assert shown(events) == visible
    counts = next(data for kind, data in events if kind == "counts")
    assert sorted(counts["load"]) == sorted(c for c in jobs if sees(credential, c))
    for cluster in ("keebler", "tioga"):
        path = f"/events?job={jobs[cluster]}"
        if sees(credential, cluster):
            one = read_stream(site, path, lambda e: any(k == "job" for k, _ in e))
            assert [(k, d["job"], d["state"]) for k, d in one] == [("job", jobs[cluster], "assigned")]
        else:
            assert site.get(path).status == 403


@pytest.mark.parametrize(("action", "form", "after"), [("cancel", {}, "cancelled"),
                                                      ("urgency", {"urgency": "hold"}, "held")])
@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("cluster", ["keebler", "tioga"])
def test_job_actions_need_the_job_opening_credential_and_the_csrf_token(setup, credential, cluster, action, form,
                                                                        after):
    site, jobs = viewer(setup, credential)
    job = jobs[cluster]
    path = f"/jobs/{job}/{action}"
    gate = setup.keebler if credential != "global" else None
    state_of = (lambda: (setup.keebler if cluster == "keebler" else setup.tioga).info(job).state) \
        if gate else (lambda: None)
    if credential not in SIGNED_IN:
        assert site.post(path, {**form, "csrf": "anything"}).status == 401
        assert state_of() == "assigned"
        return
    token = site.csrf()
    assert site.post(path, form).status == 403
    assert site.post(path, {**form, "csrf": token + "x"}).status == 403
    cross = site.post(path, {**form, "csrf": token}, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    if gate:
        assert state_of() == "assigned"
    reply = site.post(path, {**form, "csrf": token})
    if sees(credential, cluster):
        assert reply.status == 303 and reply.location.startswith(f"/jobs/{job}?notice=")
        assert after in site.get(f"/jobs/{job}").text
        if gate:
            assert state_of() == after
    else:
        assert reply.status == 403
        assert state_of() == "assigned"


def test_the_session_cookie_is_httponly_strict_and_signed(setup):
    site = Site(setup.site)
    site.sign_in(setup.keebler.token)
    header = next(h for h in site.set_cookies if h.startswith("rainbow_session="))
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Secure" not in header
    assert setup.keebler.token not in header
    body, signature = site.cookie.split("=", 1)[1].split(".")
    for forged in (f"{body}.{signature[:-2]}AA", f"{body[:-2]}AA.{signature}", "garbage", ""):
        other = Site(setup.site, cookie=f"rainbow_session={forged}")
        assert other.get("/jobs").status == 303
    assert site.get("/jobs").status == 200


def test_sign_out_needs_csrf_and_ends_the_session_in_the_browser(setup):
    site = Site(setup.site)
    site.sign_in(setup.keebler.token)
    assert site.post("/signout", {}).status == 403
    reply = site.post("/signout", {"csrf": site.csrf()})
    assert reply.status == 303 and reply.location == "/signin"
    assert any(h.startswith("rainbow_session=;") or 'rainbow_session=""' in h for h in site.set_cookies)


def test_sign_in_redirects_only_to_this_site(setup):
    site = Site(setup.site)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert site.sign_in(setup.keebler.token, target).location == "/"
    assert site.sign_in(setup.keebler.token, "/jobs?state=failed").location == "/jobs?state=failed"


def test_bad_query_values_are_refused_with_the_field_named(setup):
    site = Site(setup.site)
    site.sign_in(setup.keebler.token)
    for path, field in (("/jobs?state=bogus", "state"), ("/jobs?sort=secret", "sort"),
                        ("/jobs?after=%7B%7D", "after"), ("/jobs?sort=name&after=17", "after")):
        reply = site.get(path)
        assert reply.status == 400 and reply.text.startswith(f"{field}:")
    assert site.get("/jobs/abc").status == 404
    assert site.get("/jobs/999999").status == 404
    assert site.get("/clusters/%3Cnone%3E").status == 404
    assert site.get("/").status == 200  # still serving


def test_pages_are_keyset_paginated_in_every_order(setup):
    site = Site(setup.site)
    site.sign_in(setup.keebler.token)
    ids = [setup.keebler.submit(["true"], name=f"many-{i:03d}") for i in range(60)]
    for sort, direction, expected in (("id", "desc", sorted(ids, reverse=True)), ("name", "asc", ids)):
        seen: list[int] = []
        path = f"/jobs?name=many-*&sort={sort}&dir={direction}"
        while path:
            reply = site.get(path)
            assert reply.status == 200
            seen += [int(x) for x in re.findall(r'data-job="(\d+)"', reply.text)]
            found = re.search(r'href="([^"]+)" id="next"', reply.text)
            path = found.group(1).replace("&amp;", "&") if found else ""
        assert seen == expected


def test_security_headers_forbid_inline_script(setup):
    reply = Site(setup.site).get("/signin")
    assert reply.status == 200
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


@BOTH_STORES
def test_a_session_is_valid_on_every_server_of_the_store(server_factory, tmp_path):
    """Replicas share the signing key through the store: a cookie from one works on another (and after a restart)."""
    first = server_factory(web="127.0.0.1:0")
    cluster = register(first.address, tmp_path, "keebler")
    site = Site(first.server.web_port)
    site.sign_in(cluster.token)
    second = server_factory(web="127.0.0.1:0")
    second.scheduler.refresh_all()
    other = Site(second.server.web_port, cookie=site.cookie)
    assert other.get("/jobs").status == 200
    cluster.client.close()


def test_the_server_imports_no_web_package_unless_asked():
    code = ("import sys, rainbow.server.serve, rainbow.server.command, rainbow.cli; "
            "print(sorted(m for m in ('aiohttp', 'jinja2', 'rainbow.server.web.app') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_bad_web_address_is_refused_naming_the_flag(server_factory):
    with pytest.raises(InvalidArgument, match="--web"):
        server_factory(web="no-port-here")


def test_the_job_page_explains_which_clusters_matched_and_what_selection_decided(server_factory, tmp_path):
    import io

    from rainbow.graph.synthetic import write_cluster_jgf
    from rainbow.jobspec import simple
    from rainbow.protos import rainbow_pb2

    server = server_factory(web="127.0.0.1:0", global_token=GLOBAL_TOKEN)
    small = register(server.address, tmp_path, "small")  # 3 nodes
    big = io.StringIO()
    write_cluster_jgf(big, 8, sockets=1, cores=4, name="big")
    small.client.register("big", REGISTRATION_SECRET, big.getvalue())
    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=GLOBAL_TOKEN) for c in ("small", "big")]
    reply = small.client.scheduler_stub.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="wide", clusters=listed, jobspec=json.dumps(simple(["app"], nodes=4, tasks=4))))
    assert reply.cluster == "big"
    site = Site(server.server.web_port)
    site.sign_in(GLOBAL_TOKEN)
    page = site.get(f"/jobs/{reply.jobid}").text
    assert "Listed clusters: small, big. Matched: big." in page
    assert re.search(r"<b>small</b> did not match: needs 4 node", page)
    assert "chose <b>big</b>" in page and "Cluster state selection decided from" in page
    small.client.close()


def test_the_workflow_page_draws_the_dag_escaped_and_only_for_its_clusters(server_factory, tmp_path):
    server = server_factory(web="127.0.0.1:0")
    keebler = register(server.address, tmp_path, "keebler")
    (tmp_path / "t").mkdir()
    tioga = register(server.address, tmp_path / "t", "tioga")
    workflow = keebler.client.submit_workflow({"name": "<b>diamond</b>", "steps": {
        "first": {"command": "true"},
        "left": {"command": "true", "needs": "first"},
        "right": {"command": "true", "needs": {"first": "afterany"}},
        "last": {"command": "true", "needs": ["left", "right"]},
    }})
    ids = {step.name: step.job.id for step in workflow.steps}
    site = Site(server.server.web_port)
    site.sign_in(keebler.token)
    page = site.get(f"/workflows/{workflow.workflow_id}")
    assert page.status == 200
    assert "&lt;b&gt;diamond&lt;/b&gt;" in page.text and "<b>diamond</b>" not in page.text
    nodes = re.findall(r'<g class="step state (\w+)" data-node="(\d+)">', page.text)
    assert nodes == [("assigned", str(ids["first"])), ("depend", str(ids["left"])), ("depend", str(ids["right"])),
                     ("depend", str(ids["last"]))]
    assert page.text.count('marker-end="url(#arrow)"') == 4  # one arrow per need
    assert ">afterany</text>" in page.text  # a condition other than afterok is written on its arrow
    # Layers left to right: first, then left and right one above the other, then last.
    xs = dict(re.findall(r'data-node="(\d+)"><rect x="(\d+)"', page.text))
    assert int(xs[str(ids["first"])]) < int(xs[str(ids["left"])]) == int(xs[str(ids["right"])]) < \
        int(xs[str(ids["last"])])
    fragment = site.get(f"/workflows/{workflow.workflow_id}?fragment=1")
    assert fragment.status == 200 and fragment.text.lstrip().startswith("<svg")
    job = site.get(f"/jobs/{ids['last']}").text
    assert f'href="/workflows/{workflow.workflow_id}"' in job and "not placed yet" in job

    other = Site(server.server.web_port)
    other.sign_in(tioga.token)
    assert other.get(f"/workflows/{workflow.workflow_id}").status == 404
    assert site.get("/workflows/nosuchworkflow").status == 404
    keebler.client.close()
    tioga.client.close()
