"""The local stack (`python -m devstack`, devstack.harness) shared by the end-to-end tests.

The session's stack is stopped with Ctrl-C (SIGINT) at the end: teardown fails if it does
not exit within 15 s, exits non-zero, or leaves behind any process it had started.
"""

import secrets

import pytest

from devstack.harness import LocalStack, start


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> LocalStack:
    key = "cq_live_e2e" + secrets.token_urlsafe(32)
    running = start(tmp_path_factory.mktemp("stack"), key=key)
    try:
        yield running
    finally:
        stopped = running.stop()
    assert stopped.returncode == 0, (
        f"the stack exited with {stopped.returncode} on Ctrl-C\n--- log ---\n{running.log_tail()}"
    )
    assert any("devstack.aws" in p.cmdline for p in stopped.tracked), (
        f"the embedded AWS child was not seen: {stopped.tracked}"
    )
    assert not stopped.leftovers, f"Ctrl-C left processes behind: {stopped.leftovers}"


@pytest.fixture(scope="session")
def other_key(stack) -> str:
    """A key of another account, created with the operator tool against the stack's AWS."""
    return stack.create_api_key("e2e-other-" + secrets.token_hex(4))
