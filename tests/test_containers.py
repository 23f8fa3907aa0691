"""The container image and the compose stack, built and run for real with podman.

Needs podman (with buildah), CONTAINERS_CONF where this machine needs settings (.ci/containers.conf) and
a Debian base image made locally with ``.ci/base-image``, named by RAINBOW_TEST_CONTAINER_BASE (no registry
is needed); ``.ci/run`` provides all three. Every container, volume and network a test creates is removed, also
when the test fails; containers are started in this test run's cgroup where it has one of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.errors import RainbowError
from rainbow.version import __version__

from conftest import example, subprocess_env

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
POSTGRES_CONTEXT = Path(__file__).parent / "data" / "containers" / "postgres"
BASE_ENV = "RAINBOW_TEST_CONTAINER_BASE"
# The host's CA bundle is handed to the image's pip step as the build secret "cabundle" (an inspecting
# proxy re-signs PyPI's certificates with a CA only the host trusts).
CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
DEMO_JOBS = {"hello-1", "hello-2", "two-nodes", "wide"}
DEADLINE = 180.0


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def cgroup_parent() -> list[str]:
    """``--cgroup-parent`` naming this process's own cgroup (v1 hierarchy), so its containers die with it.

    For containers only: a build would run its steps in that cgroup itself, not in a child of it.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(",") and path != "/":
                return ["--cgroup-parent", path]
    return []


def rainbow_cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "rainbow", *argv], capture_output=True, text=True, env=subprocess_env(), timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"rainbow {' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ca_bundle_secret() -> list[str]:
    for path in CA_BUNDLES:
        if Path(path).is_file():
            return ["--secret", f"id=cabundle,src={path}"]
    return []


@pytest.fixture(scope="session")
def base_image() -> str:
    """The local base image (RAINBOW_TEST_CONTAINER_BASE, which .ci/run sets): unset, container tests skip
    locally (building the image takes a minute or more) and fail in CI (CI=true)."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    base = os.environ.get(BASE_ENV, "")
    if not base:
        if in_ci:
            pytest.fail(f"CI=true but {BASE_ENV} is not set: .ci/run must build the base image")
        pytest.skip(f"container tests need {BASE_ENV}=<a local Debian image> (made by .ci/base-image)")
    if shutil.which("podman") is None:
        if in_ci:
            pytest.fail("CI=true but podman is missing: .ci/run must install it")
        pytest.skip("container tests need podman (apt-get install podman buildah runc uidmap slirp4netns)")
    if podman("image", "exists", base, check=False).returncode != 0:
        if in_ci:
            pytest.fail(f"CI=true but the base image {base} is missing: .ci/run must build it")
        pytest.skip(f"the base image {base} is missing: build it with .ci/base-image {base}")
    return base


def build(tag: str, base: str, context: Path, *extra: str) -> None:
    """A Docker-format image (HEALTHCHECK survives only there), without cached layers or stage images left."""
    flags = ["--quiet", "--layers=false", "--format", "docker", "--build-arg", f"BASE={base}", "-t", tag, *extra]
    podman("build", *flags, str(context), timeout=900)


@pytest.fixture(scope="session")
def image(base_image) -> Iterator[str]:
    """The project's Containerfile built from the local base (removed after the session)."""
    tag = f"localhost/rainbow-test:{uuid.uuid4().hex[:10]}"
    try:
        build(tag, base_image, ROOT, *ca_bundle_secret())
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="session")
def postgres_image(base_image) -> str:
    """PostgreSQL for the compose stack, from Debian's package; kept (tagged by its sources) for later runs."""
    digest = hashlib.sha256()
    for path in sorted(POSTGRES_CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"localhost/rainbow-test-postgres:{digest.hexdigest()[:12]}"
    if podman("image", "exists", tag, check=False).returncode != 0:
        build(tag, base_image, POSTGRES_CONTEXT)
    return tag


class Resources:
    """Containers, volumes and networks a test made, removed at its end whatever happened."""

    def __init__(self) -> None:
        self.prefix = f"rainbow-test-{uuid.uuid4().hex[:8]}"
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def container_name(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        self.containers.append(name)
        return name

    def volume(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        self.volumes.append(name)
        podman("volume", "create", name)
        return name

    def remove(self) -> None:
        for name in self.containers:
            podman("rm", "--force", "--volumes", "--time", "5", name, check=False)
        for name in self.volumes:
            podman("volume", "rm", "--force", name, check=False)


@pytest.fixture
def resources(image) -> Iterator[Resources]:
    made = Resources()
    try:
        yield made
    finally:
        made.remove()


def test_image_holds_the_cli_and_runs_as_a_user(image):
    version = podman("run", "--rm", *cgroup_parent(), image, "--version")
    assert version.stdout.strip() == f"rainbow {__version__}"
    config = json.loads(podman("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["User"] == "rainbow"
    assert set(config["ExposedPorts"]) == {"50051/tcp", "9464/tcp", "8080/tcp"}
    assert "/data" in config["Volumes"]
    healthcheck = json.loads(podman("image", "inspect", "--format", "{{json .HealthCheck}}", image).stdout)
    assert healthcheck["Test"][:3] == ["CMD", "rainbow", "health"]  # kept: the image is in Docker format
    assert config["Entrypoint"] == ["rainbow"] and config["Cmd"] == ["server"]
    # the CA bundle was a build secret: nothing of it is in the image
    check = "test ! -e /run/secrets/cabundle && ! env | grep -q PIP_CERT && echo absent"
    assert podman("run", "--rm", *cgroup_parent(), "--entrypoint", "sh", image, "-c", check).stdout == "absent\n"


def start_server(resources: Resources, image: str, volume: str, secret: Path, role: str) -> tuple[str, str]:
    """A server container on ``volume`` with its secret from a file; (container name, host address)."""
    name = resources.container_name(role)
    podman(
        "run",
        "--detach",
        "--init",
        "--name",
        name,
        *cgroup_parent(),
        "--health-interval",
        "disable",
        "--publish",
        "127.0.0.1::50051",
        "--volume",
        f"{volume}:/data",
        "--volume",
        f"{secret}:/run/secrets/registration-secret:ro",
        "--env",
        "RAINBOW_SERVER_SECRET_FILE=/run/secrets/registration-secret",
        image,
    )
    address = podman("port", name, "50051/tcp").stdout.strip().splitlines()[0]
    with RainbowClient(address, timeout=60, wait_for_ready=True) as client:
        assert client.health() == "SERVING"
    return name, address


def test_server_container_with_a_volume_and_a_secret_file(image, resources, tmp_path):
    secret = tmp_path / "registration-secret"
    secret.write_text("container-secret\n")
    secret.chmod(0o644)  # read by the container's user; a mounted Kubernetes secret is the same
    volume = resources.volume("data")
    name, address = start_server(resources, image, volume, secret, "server")
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"

    nodes = tmp_path / "nodes.json"
    nodes.write_text(example("cluster-nodes.json"))
    config = tmp_path / "rainbow-config.yaml"
    rainbow_cli("config", "init", "--config-path", str(config))
    register = ["register", "cluster", "--host", address, "--cluster-name", "keebler", "--nodes-json", str(nodes)]
    refused = rainbow_cli(*register, "--secret", "wrong", "--config-path", str(config), check=False)
    assert refused.returncode == 1 and "secret" in refused.stderr.lower()
    rainbow_cli(*register, "--secret", "container-secret", "--config-path", str(config), "--save")
    submitted = rainbow_cli(
        "submit", "--host", address, "--config-path", str(config), "-c", "echo hi", "--job-name", "kept"
    )
    assert "Submitted job 1 (kept) to cluster keebler" in submitted.stdout
    assert podman("healthcheck", "run", name).returncode == 0

    # a new container on the same volume: the migrations run again on the existing store, the job is there
    podman("stop", "--time", "20", name)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    podman("rm", name)
    name, address = start_server(resources, image, volume, secret, "server-again")
    jobs = json.loads(rainbow_cli("jobs", "--host", address, "--config-path", str(config), "--json").stdout)
    assert [(job["id"], job["name"], job["cluster"]) for job in jobs] == [(1, "kept", "keebler")]
    assert podman("healthcheck", "run", name, check=False).returncode == 0


def project_leftovers(project: str) -> dict[str, list[str]]:
    label = f"label=io.podman.compose.project={project}"
    return {
        "containers": podman("ps", "--all", "--quiet", "--filter", label).stdout.split(),
        "volumes": podman("volume", "ls", "--quiet", "--filter", label).stdout.split(),
        "networks": [
            n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(f"{project}_")
        ],
    }


def remove_project(compose: list[str], project: str) -> dict[str, list[str]]:
    """``down -v``, then what it left behind (removed here by force, so nothing outlives the test)."""
    subprocess.run([*compose, "down", "--volumes", "--timeout", "10"], capture_output=True, text=True, timeout=300)
    leftovers = project_leftovers(project)
    for container in leftovers["containers"]:
        podman("rm", "--force", "--volumes", container, check=False)
    for volume in leftovers["volumes"]:
        podman("volume", "rm", "--force", volume, check=False)
    for network in leftovers["networks"]:
        podman("network", "rm", "--force", network, check=False)
    return leftovers


def stack_report(project: str, lines: int = 25) -> str:
    """Each of the project's containers: its state, how often it was restarted and the end of its log."""
    label = f"label=io.podman.compose.project={project}"
    report = []
    for name in podman("ps", "--all", "--format", "{{.Names}}", "--filter", label).stdout.split():
        state = podman("inspect", "--format", "{{.State.Status}} exit={{.State.ExitCode}} restarts={{.RestartCount}}",
                       name, check=False).stdout.strip()
        log = podman("logs", "--tail", str(lines), name, check=False)
        report.append(f"--- {name}: {state}\n{log.stdout}{log.stderr}")
    return "\n".join(report)


def test_compose_stack_runs_the_demo_jobs(image, postgres_image, tmp_path, monkeypatch):
    if shutil.which("podman-compose") is None:
        pytest.skip("the compose test needs podman-compose (pip install podman-compose)")
    project = f"rainbow-test-{uuid.uuid4().hex[:8]}"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("registration-secret", "submit-token", "postgres-password"):
        (secrets / name).write_text(uuid.uuid4().hex + "\n")
        (secrets / name).chmod(0o644)
    port = free_port()
    for variable, value in {
        "RAINBOW_IMAGE": image,
        "POSTGRES_IMAGE": postgres_image,
        "RAINBOW_PORT": str(port),
        "RAINBOW_SECRETS": str(secrets),
    }.items():
        monkeypatch.setenv(variable, value)
    compose = ["podman-compose", "--project-name", project, "--file", str(COMPOSE_FILE)]
    run_args = cgroup_parent()
    if run_args:
        compose.append(f"--podman-run-args={' '.join(run_args)}")

    token = (secrets / "submit-token").read_text().strip()
    config = RainbowConfig({"clusters": [{"name": "keebler", "token": token}, {"name": "tioga", "token": token}]})
    jobs: dict[str, object] = {}
    try:
        up = subprocess.run([*compose, "up", "--detach"], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        with RainbowClient(f"127.0.0.1:{port}", config_file=config, timeout=10, wait_for_ready=True) as client:
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                try:
                    jobs = {job.name: job for job in client.list_jobs()}
                except RainbowError:  # the server is still waiting for PostgreSQL or the clusters to register
                    jobs = {}
                if set(jobs) == DEMO_JOBS and all(job.state == "completed" for job in jobs.values()):
                    break
                time.sleep(0.5)
        report = stack_report(project)
        assert set(jobs) == DEMO_JOBS, report
        assert {name: job.state for name, job in jobs.items()} == dict.fromkeys(DEMO_JOBS, "completed"), report
        assert jobs["wide"].cluster == "tioga"  # 8 nodes: keebler has 3
        assert {job.exit_code for job in jobs.values()} == {0}
    finally:
        leftovers = remove_project(compose, project)
    assert leftovers == {"containers": [], "volumes": [], "networks": []}
