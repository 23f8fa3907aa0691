"""Loading the broker module (flux_plugins/rainbow_agent.py) as flux-core's loader does, against the fake flux."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import rainbow

from conftest import subprocess_env

PLUGIN = Path(__file__).parent.parent / "flux_plugins" / "rainbow_agent.py"
FAKE = Path(__file__).parent / "fakeflux"
SRC = Path(rainbow.__file__).resolve().parent.parent

LOAD = textwrap.dedent("""
    import importlib.util, sys
    sys.path[:0] = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("rainbow_agent", {plugin!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    try:
        module.RainbowAgent(module.flux.Flux())
    except ValueError as exc:
        print(exc)
""").format(plugin=str(PLUGIN))


def load(*path: Path, site: bool) -> subprocess.CompletedProcess:
    """Load the module under a Python that sees only ``path`` (and site-packages when ``site``)."""
    flags = ["-I"] if site else ["-I", "-S"]  # -I: PYTHONPATH (and the user's site) ignored
    return subprocess.run([sys.executable, *flags, "-c", LOAD, *map(str, path)],
                          capture_output=True, text=True, timeout=60, env=subprocess_env(), cwd=FAKE)


def test_without_rainbow_the_load_fails_with_one_line_naming_the_fix():
    result = load(FAKE, site=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith("rainbow_agent: the broker's Python ")
    assert "cannot import rainbow: install rainbow into it (flux python -m pip install" in line
    assert "or set PYTHONPATH or FLUX_PYTHONPATH_PREPEND to include it before the Flux instance starts" in line


def test_a_missing_dependency_of_rainbow_is_named():
    result = load(FAKE, SRC, site=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (line,) = result.stdout.splitlines()
    assert "cannot import rainbow:" not in line
    assert " (needed by rainbow): install rainbow into it" in line


def test_with_rainbow_importable_the_module_reads_its_arguments():
    result = load(FAKE, SRC, site=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # no --config-path: the default ./rainbow-config.yaml, absent here (the run's directory has none)
    assert result.stdout.strip() == "config file rainbow-config.yaml does not exist"
