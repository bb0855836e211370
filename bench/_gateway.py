"""The gateway in-process, as tests/conftest.py runs it: moto ``mock_aws`` + chalice.test.Client.

Importing this module first installs a botocore ``before-call`` hook in
``botocore.handlers.BUILTIN_HANDLERS``: every botocore session created afterwards (boto3's
default session for SQS, PynamoDB's per-thread sessions) records each AWS call it makes.
It must therefore be imported before anything creates a botocore session.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

import bench  # noqa: F401  (puts the repo on sys.path)
from devstack.container import go_offline  # noqa: E402  (after bench: the repo on sys.path)

go_offline()  # as the tests do: never talk to a real account
os.environ.setdefault("SMSGW_SECRET_KEY", "bench-otp-secret")

from botocore import handlers as _handlers  # noqa: E402


class CallLog:
    """Every AWS call made in this process, in order: (service id, operation, request dict)."""

    def __init__(self):
        self.calls: list[tuple[str, str, dict]] = []

    def __call__(self, model, params, **kwargs):
        self.calls.append((model.service_model.service_id, model.name, params))
        # returning None lets the call go on

    @contextmanager
    def recording(self):
        """Yield a list that holds, on exit, the calls made inside the block."""
        start = len(self.calls)
        made: list = []
        try:
            yield made
        finally:
            made.extend(self.calls[start:])


def _install() -> CallLog:
    for entry in _handlers.BUILTIN_HANDLERS:  # (event, handler[, register_first|last])
        if entry[0] == "before-call" and isinstance(entry[1], CallLog):
            return entry[1]
    calls = CallLog()
    _handlers.BUILTIN_HANDLERS.append(("before-call", calls))
    return calls


CALLS = _install()

from moto import mock_aws  # noqa: E402


class Api:
    """chalice.test.Client with JSON in and out, and the API key sent on every call."""

    def __init__(self, client, key):
        self.client = client
        self.key = key

    def call(self, method, path, body=None, headers=None):
        headers = {"Content-Type": "application/json", "X-API-Key": self.key, **(headers or {})}
        payload = json.dumps(body) if body is not None else None
        response = getattr(self.client.http, method.lower())(path, headers=headers, body=payload)
        response.json = json.loads(response.body) if response.body else None
        return response

    def post(self, path, body=None, headers=None):
        return self.call("POST", path, body, headers)

    def get(self, path):
        return self.call("GET", path)


@contextmanager
def gateway():
    """Yield an ``Api`` on a freshly provisioned in-process AWS, with a new API key.

    Nothing is cached in the "Lambda" yet: the first request loads the key and creates
    the clients.
    """
    from chalice.test import Client

    from chalicelib import auth, quotas
    from chinqit_admin import provision
    from devstack import container

    with mock_aws():
        container.reset()
        with CALLS.recording() as setup:
            provision.all_resources()
            key, _ = auth.create_key("api", "bench", name="bench")
            # the benches measure speed and AWS calls: the account's intake quotas stay out
            quotas.set_quotas(
                "bench", {"smsPerMinute": quotas.MAX_VALUE, "smsPerDay": quotas.MAX_VALUE}
            )
        if not any(op == "PutItem" for _, op, _ in setup):
            raise RuntimeError(
                "the botocore call hook saw no call: a botocore session was "
                "created before bench._gateway was imported"
            )
        from app import app

        try:
            with Client(app) as client:
                yield Api(client, key)
        finally:
            container.reset()
