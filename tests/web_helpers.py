"""What the dashboard tests share: clusters registered over gRPC, and a plain HTTP client with a cookie."""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2

from conftest import REGISTRATION_SECRET, example


@dataclass
class Cluster:
    """A cluster registered over gRPC, with a config file holding only its own token."""

    name: str
    address: str
    config: RainbowConfig
    client: RainbowClient

    @property
    def token(self) -> str:
        token = self.config.token_for(self.name)
        assert token
        return token

    def submit(self, command: list[str], name: str | None = None) -> int:
        return self.client.submit_jobspec(simple(command, name=name), name=name or command[0]).jobid

    def info(self, jobid: int) -> rainbow_pb2.JobInfo:
        return self.client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=self.token))


def register(address: str, tmp_path: Path, name: str) -> Cluster:
    config = RainbowConfig.new(name, host=address, path=tmp_path / f"{name}-config.yaml")
    client = RainbowClient(address, config_file=config)
    client.register(name, REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
    return Cluster(name, address, config, client)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


@dataclass
class Site:
    """The dashboard over HTTP as a browser without JavaScript sees it: one cookie, no redirects followed."""

    port: int
    cookie: str = ""
    set_cookies: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, form: dict | None = None, headers: dict | None = None) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            if response.getheader("Content-Type", "").startswith("text/event-stream"):
                text = response.read1(65536).decode()  # the first chunk of a stream that does not end
            else:
                text = response.read().decode()
            self.set_cookies = response.headers.get_all("Set-Cookie") or []
            return Reply(response.status, response.headers, text)
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict, **kwargs) -> Reply:
        return self.request("POST", path, form=form, **kwargs)

    def sign_in(self, token: str, next_path: str = "/") -> Reply:
        reply = self.post("/signin", {"token": token, "next": next_path})
        for header in self.set_cookies:
            if header.startswith("rainbow_session="):
                self.cookie = header.split(";", 1)[0]
        return reply

    def csrf(self, path: str = "/") -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, "no CSRF token on the page"
        return match.group(1)
