"""deploy/kubernetes: every manifest valid (strictly: no unknown fields) for the oldest and newest
Kubernetes the project supports, and the kustomization lists every one of them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.container

MANIFESTS = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"


def manifests() -> list[Path]:
    return sorted(path for path in MANIFESTS.rglob("*.yaml") if path.name != KUSTOMIZATION)


def test_the_kustomization_lists_every_manifest():
    listed = yaml.safe_load((MANIFESTS / KUSTOMIZATION).read_text())["resources"]
    assert sorted(listed) == sorted(str(path.relative_to(MANIFESTS)) for path in manifests())


@pytest.mark.parametrize("version", ["1.30.0", "1.37.0"])
def test_manifests_are_valid_kubernetes(version):
    if shutil.which("kubernetes-validate") is None:
        pytest.skip("needs kubernetes-validate (pip install kubernetes-validate)")
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--kubernetes-version", version, *map(str, manifests())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    documents = sum(1 for path in manifests() for doc in yaml.safe_load_all(path.read_text()) if doc)
    assert len(passed) == documents, result.stdout
