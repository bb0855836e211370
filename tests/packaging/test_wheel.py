"""The wheel, installed in a fresh venv, is the bridge and nothing of the Lambdas' stack."""

import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

PROJECT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
LAMBDA_ONLY = ("chalice", "pynamodb", "phonenumbers")


def run(*command, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=180,
        check=check,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout; its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", PROJECT)
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", *sorted((root / "dist").glob("*.whl")))
    return bin_dir


def test_the_bridge_runs_from_the_wheel(installed):
    assert "usage:" in run(installed / "chinqit-bridge", "--help").stdout
    assert run(installed / "chinqit-bridge", "--version").stdout.split()[-1] == VERSION


def test_the_lambdas_dependencies_are_not_installed(installed):
    probe = f"import importlib.util as u; print([m for m in {LAMBDA_ONLY!r} if u.find_spec(m)])"
    assert run(installed / "python", "-c", probe).stdout.strip() == "[]"


def test_every_driver_but_the_modem_imports_without_extras(installed):
    probe = (
        "import device_bridge.drivers.simulator, device_bridge.drivers.termux, device_bridge.pdu"
    )
    run(installed / "python", "-c", probe)


def test_the_admin_tool_without_its_extra_says_what_to_install(installed):
    result = run(installed / "chinqit-admin", "keys", "list", check=False)
    assert result.returncode == 2
    assert "pip install 'chinqit-gateway[admin]'" in result.stderr
    assert "Traceback" not in result.stderr
