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
