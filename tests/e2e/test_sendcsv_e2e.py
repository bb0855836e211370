"""clients.sendcsv against the local stack: its summary matches what the server did."""

import subprocess
import sys
import time

from devstack.harness import PROJECT, clean_env, fresh_local_number


def test_sendcsv_reports_what_was_queued_and_what_was_refused(stack, tmp_path):
    numbers = [fresh_local_number(), fresh_local_number()]
    csv = tmp_path / "numbers.csv"
    csv.write_text("phoneNumber\n" + "\n".join([*numbers, "12345678"]) + "\n")
    run = subprocess.run(
        [sys.executable, "-m", "clients.sendcsv", "--api", stack.url, "--key", stack.key]
        + ["--message", "Rappel: RDV demain", str(csv)],
        cwd=PROJECT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr  # one number refused
    assert "3/3: 2 queued, 1 refused" in run.stderr
    assert "phoneNumbers[2]" in run.stderr
    wanted = {"+222" + n for n in numbers}
    deadline = time.monotonic() + 30
    while not wanted <= {line["to"] for line in stack.outbox_lines()}:
        assert time.monotonic() < deadline, "the queued SMS did not reach the phone"
        time.sleep(0.2)
    texts = {line["text"] for line in stack.outbox_lines() if line["to"] in wanted}
    assert texts == {"Rappel: RDV demain"}
