"""The dashboard signed in with a user token: that user's own jobs (an admin's: everyone's), checked as gRPC is."""

from __future__ import annotations

import pytest
from test_web import read_stream
from web_helpers import Site, register

from rainbow.client import RainbowClient
from rainbow.jobspec import simple

from conftest import REGISTRATION_SECRET

pytest.importorskip("aiohttp")


@pytest.fixture
def site(server_factory, tmp_path):
    server = server_factory(web="127.0.0.1:0")
    cluster = register(server.address, tmp_path, "keebler")
    with RainbowClient(server.address) as operator:
        tokens = {name: operator.add_user(name, admin=name == "root", secret=REGISTRATION_SECRET).token
                  for name in ("alice", "bob", "root")}
    jobs = {"legacy": cluster.submit(["true"], name="job-of-legacy")}
    for name in ("alice", "bob"):
        with RainbowClient(server.address, user_token=tokens[name]) as client:
            jobs[name] = client.submit_jobspec(simple(["sleep", "60"]), name=f"job-of-{name}").jobid
    yield server, tokens, jobs
    cluster.client.close()


def signed_in(server, token: str) -> Site:
    site = Site(server.server.web_port)
    assert site.sign_in(token).status == 303
    return site


def test_a_user_sees_only_their_own_jobs(site):
    server, tokens, jobs = site
    alice = signed_in(server, tokens["alice"])
    table = alice.get("/jobs").text
    assert f'data-job="{jobs["alice"]}"' in table
    assert f'data-job="{jobs["bob"]}"' not in table and f'data-job="{jobs["legacy"]}"' not in table
    page = alice.get(f"/jobs/{jobs['alice']}")
    assert page.status == 200 and "<dt>User</dt><dd>alice</dd>" in page.text
    refused = alice.get(f"/jobs/{jobs['bob']}")
    assert refused.status == 403 and "belongs to another user" in refused.text and "job-of-bob" not in refused.text
    assert alice.get(f"/events?job={jobs['bob']}").status == 403

    def shown(events):
        return sorted({int(i) for kind, data in events if kind == "states" for i in data})

    events = read_stream(alice, "/events", lambda e: jobs["alice"] in shown(e) and any(k == "counts" for k, _ in e))
    assert shown(events) == [jobs["alice"]]


def test_an_admin_sees_every_job(site):
    server, tokens, jobs = site
    table = signed_in(server, tokens["root"]).get("/jobs").text
    assert all(f'data-job="{job}"' in table for job in jobs.values())


def test_a_user_cancels_their_own_job_only(site):
    server, tokens, jobs = site
    alice = signed_in(server, tokens["alice"])
    csrf = alice.csrf()
    assert alice.post(f"/jobs/{jobs['bob']}/cancel", {"csrf": csrf}).status == 403
    assert alice.post(f"/jobs/{jobs['alice']}/cancel", {"csrf": csrf}).status == 303
    with RainbowClient(server.address, user_token=tokens["bob"]) as bob:
        assert bob.get_job(jobs["bob"]).state == "assigned"
    with RainbowClient(server.address, user_token=tokens["alice"]) as client:
        assert client.get_job(jobs["alice"]).state == "cancelled"


def test_a_user_holds_their_own_job_and_lets_it_go_from_its_page(site):
    server, tokens, jobs = site
    alice = signed_in(server, tokens["alice"])
    csrf = alice.csrf()
    assert 'id="hold"' in alice.get(f"/jobs/{jobs['alice']}").text
    assert alice.post(f"/jobs/{jobs['bob']}/urgency", {"csrf": csrf, "urgency": "hold"}).status == 403
    assert alice.post(f"/jobs/{jobs['alice']}/urgency", {"csrf": csrf, "urgency": "hold"}).status == 303
    page = alice.get(f"/jobs/{jobs['alice']}").text
    assert 'id="let-go"' in page and 'id="hold"' not in page
    with RainbowClient(server.address, user_token=tokens["alice"]) as client:
        assert client.get_job(jobs["alice"]).state == "held"
        assert alice.post(f"/jobs/{jobs['alice']}/urgency", {"csrf": csrf, "urgency": "default"}).status == 303
        assert client.get_job(jobs["alice"]).state == "assigned"
    with RainbowClient(server.address, user_token=tokens["bob"]) as bob:
        assert bob.get_job(jobs["bob"]).state == "assigned"


def test_a_removed_user_is_signed_out(site):
    server, tokens, _ = site
    bob = signed_in(server, tokens["bob"])
    assert bob.get("/jobs").status == 200
    with RainbowClient(server.address) as operator:
        operator.remove_user("bob", secret=REGISTRATION_SECRET)
    reply = bob.get("/jobs")
    assert reply.status == 303 and reply.location == "/signin"
    assert Site(server.server.web_port).sign_in(tokens["bob"]).status == 403


def test_without_a_legacy_identity_submit_tokens_do_not_sign_in(server_factory, tmp_path):
    server = server_factory(web="127.0.0.1:0", legacy_user=None)
    cluster = register(server.address, tmp_path, "keebler")
    with RainbowClient(server.address) as operator:
        token = operator.add_user("alice", secret=REGISTRATION_SECRET).token
    refused = Site(server.server.web_port).sign_in(cluster.token)
    assert refused.status == 403 and "opens no cluster" in refused.text
    assert signed_in(server, token).get("/jobs").status == 200
    cluster.client.close()


def test_a_workflow_page_opens_to_its_owner_and_an_admin_only(site):
    server, tokens, _ = site
    with RainbowClient(server.address, user_token=tokens["alice"]) as client:
        workflow = client.submit_workflow({"name": "pair-of-alice", "steps": {
            "first": {"command": "true"}, "then": {"command": "true", "needs": "first"}}})
    path = f"/workflows/{workflow.workflow_id}"
    page = signed_in(server, tokens["alice"]).get(path)
    assert page.status == 200 and "pair-of-alice" in page.text
    refused = signed_in(server, tokens["bob"]).get(path)
    assert refused.status == 404 and "pair-of-alice" not in refused.text
    admin = signed_in(server, tokens["root"]).get(path)
    assert admin.status == 200 and "pair-of-alice" in admin.text
