"""The service files shipped for production: the Termux:Boot script starts the bridge
again whenever it exits."""

import os
import subprocess
import time
from pathlib import Path

SCRIPT = (
    Path(__file__).resolve().parents[3] / "device_bridge" / "deploy" / "termux-boot-chinqit-bridge"
)


def test_the_termux_boot_script_restarts_a_bridge_that_exits(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    runs = tmp_path / "runs"
    for name, body in {
        "termux-wake-lock": "exit 0",
        "chinqit-bridge": f'echo "$@" >> {runs}; exit 3',
    }.items():
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    script = subprocess.Popen(["sh", str(SCRIPT)], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not runs.exists() or len(runs.read_text().splitlines()) < 3:
            assert time.monotonic() < deadline, "the bridge was not started again"
            time.sleep(0.1)
    finally:
        os.killpg(script.pid, 9)
        script.wait()
    assert runs.read_text().splitlines()[0] == f"--config {tmp_path}/chinqit-bridge.toml"
    assert "bridge exited with 3; starting again in 1s" in (tmp_path / "bridge.log").read_text()


UNIT = SCRIPT.parent / "chinqit-bridge.service"


def test_the_systemd_unit_keeps_the_bridge_files_private():
    lines = UNIT.read_text().splitlines()
    for setting in ("UMask=0077", "StateDirectoryMode=0700", "SupplementaryGroups=dialout"):
        assert setting in lines


def test_the_termux_boot_script_is_valid_sh_with_a_private_umask():
    subprocess.run(["sh", "-n", str(SCRIPT)], check=True)
    assert "umask 077" in SCRIPT.read_text().splitlines()


def test_the_termux_boot_script_rotates_a_big_log_before_starting(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"termux-wake-lock": "exit 0", "chinqit-bridge": "kill -9 $PPID"}.items():
        fake = bin_dir / name
        fake.write_text(f"#!/bin/sh\n{body}\n")
        fake.chmod(0o755)
    (tmp_path / "bridge.log").write_text("x" * 200)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CHINQIT_BRIDGE_LOG_MAX": "100",
    }
    subprocess.run(["sh", str(SCRIPT)], env=env, timeout=10, check=False)
    assert (tmp_path / "bridge.log.1").read_text() == "x" * 200
