"""`python -m tests.integration.bridge.bridge_process ARGS`: the real bridge command line with
the fake phone (``--driver fake``), for the tests that kill or signal a bridge process.

BRIDGE_TEST_EXIT_BEFORE_DELETE=1 makes the process die like ``kill -9`` (os._exit, no
cleanup) at its first SQS delete: the SMS is sent and its outcome journaled, the SQS
message not yet deleted.
"""

import os

from device_bridge import drivers, transport
from device_bridge.cli import main
from tests.integration.bridge.fakes import CRASH_EXIT

drivers.DRIVERS["fake"] = "tests.integration.bridge.fakes"
if os.environ.get("BRIDGE_TEST_EXIT_BEFORE_DELETE"):
    transport.SqsQueue.delete = lambda queue, receipts: os._exit(CRASH_EXIT)

raise SystemExit(main())
