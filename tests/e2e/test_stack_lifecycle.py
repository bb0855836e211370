"""The local stack contract: SMSGW_PORT, SMSGW_DEV_API_KEY, AWS_ENDPOINT_URL, clean Ctrl-C."""

import signal
import uuid

import pytest
import requests

from devstack.harness import HOST, OUTBOUND_QUEUE, sqs_client, start
from devstack.proctree import descendants

from .helpers import port_is_closed, start_embedded_aws, wait_for_sms

pytestmark = pytest.mark.e2e


def test_stack_serves_on_smsgw_port_and_keeps_the_given_key_out_of_its_output(stack):
    assert stack.banner_value("API") == f"http://{HOST}:{stack.port}"
    assert requests.get(f"http://{HOST}:{stack.port}/health", timeout=10).status_code == 200
    assert stack.banner_value("API key") == "(from SMSGW_DEV_API_KEY)"
    assert stack.key not in stack.log_text()
    assert stack.banner_value("phone outbox") == str(stack.outbox)
    assert stack.banner_value("phone inbox") == str(stack.inbox)
    assert stack.aws_endpoint.startswith(f"http://{HOST}:")


def test_ctrl_c_stops_everything_it_started(tmp_path):
    running = start(tmp_path)  # no SMSGW_DEV_API_KEY: the stack makes and prints one
    try:
        assert running.key and running.key.startswith("cq_live_")
        seeded = running.get(f"/messages/{uuid.uuid4()}")
        assert seeded.status_code == 404, seeded.text  # the printed key is a valid key
        children = descendants(running.pid)
        assert any("devstack.aws" in p.cmdline for p in children), children
        aws_port = int(running.aws_endpoint.rsplit(":", 1)[1])
    finally:
        stopped = running.stop(signal.SIGINT)
    assert stopped.returncode == 0
    assert not stopped.leftovers, f"left behind: {stopped.leftovers}"
    assert port_is_closed(running.port) and port_is_closed(aws_port)


def test_given_aws_endpoint_is_used_and_left_running(tmp_path):
    aws, endpoint = start_embedded_aws()
    try:
        running = start(tmp_path, key="cq_live_e2e" + uuid.uuid4().hex, AWS_ENDPOINT_URL=endpoint)
        try:
            assert running.aws_endpoint == endpoint
            started = descendants(running.pid)
            assert not any("devstack.aws" in p.cmdline for p in started), (
                f"the stack started its own AWS anyway: {started}"
            )

            sent = running.post(
                "/messages/send", {"message": "via an existing AWS", "phoneNumber": "38089336"}
            )
            assert sent.status_code == 200, sent.text
            message_id = sent.json()["messageId"]
            # On the given AWS's queue (or already sent from it by the device bridge).
            assert (
                wait_for_sms(running, OUTBOUND_QUEUE, message_id, endpoint=endpoint)["to"]
                == "+22238089336"
            )
        finally:
            stopped = running.stop(signal.SIGINT)
        assert stopped.returncode == 0
        assert not stopped.leftovers, f"left behind: {stopped.leftovers}"
        # What the stack did not start, it does not stop.
        assert aws.poll() is None, "stopping the stack stopped the AWS it was given"
        assert OUTBOUND_QUEUE in " ".join(sqs_client(endpoint).list_queues().get("QueueUrls", []))
    finally:
        aws.terminate()
        aws.wait(timeout=15)
