"""The bridge's two links: the SQS queues it takes SMS from and the API it reports to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import boto3
import botocore.session
import requests
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials
from requests.adapters import HTTPAdapter

SQS_BATCH_LIMIT = 10  # messages per SQS receive, delete or visibility change


class DeviceKeyCredentials(CredentialProvider):
    """AWS credentials from POST /device/credentials; botocore refreshes them before they
    expire (15 minutes ahead), so the bridge never holds a long-lived secret but its key."""

    METHOD = CANONICAL_NAME = "chinqit-device-key"

    def __init__(self, fetch: Callable[[], dict], first: dict | None = None):
        self._fetch = fetch
        self._first = first

    def load(self) -> RefreshableCredentials:
        first, self._first = self._first, None
        return RefreshableCredentials.create_from_metadata(
            _metadata(first or self._fetch()), lambda: _metadata(self._fetch()), self.METHOD
        )


def _metadata(answer: dict) -> dict:
    return {
        "access_key": answer["accessKeyId"],
        "secret_key": answer["secretAccessKey"],
        "token": answer["sessionToken"],
        "expiry_time": answer["expiration"],
    }


def sqs_client(
    wait_time_seconds: int,
    credentials: CredentialProvider | None = None,
    region: str | None = None,
    ca_bundle: str = "",
):
    """An SQS client; without ``credentials`` it uses the standard AWS settings.
    ``ca_bundle``: a PEM file of CAs to trust instead of the system's (never "don't verify")."""
    session = botocore.session.Session()
    if credentials is not None:
        session.get_component("credential_provider").insert_before("env", credentials)
    # The read timeout must outlast a long poll, or every quiet poll would look like an outage.
    return boto3.Session(botocore_session=session).client(
        "sqs",
        region_name=session.get_config_variable("region") or region,
        verify=ca_bundle or None,
        config=Config(
            connect_timeout=10,
            read_timeout=wait_time_seconds + 10,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


@dataclass(frozen=True)
class Received:
    """One message as SQS delivered it. ``sqs_id`` is the same on every redelivery."""

    sqs_id: str
    receipt: str
    body: str = field(repr=False)  # carries the SMS text, never logged
    group: str | None = None  # MessageGroupId: the sending account, for a fair share


class SqsQueue:
    """One outbound queue, by name or URL (a name is resolved on first use)."""

    def __init__(self, client, name_or_url: str):
        self.client = client
        self.name = name_or_url
        self._url = name_or_url if name_or_url.startswith(("https://", "http://")) else None

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self.client.get_queue_url(QueueName=self.name)["QueueUrl"]
        return self._url

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_timeout: int
    ) -> list[Received]:
        reply = self.client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=["MessageGroupId"],
        )
        return [
            Received(
                m["MessageId"],
                m["ReceiptHandle"],
                m["Body"],
                m.get("Attributes", {}).get("MessageGroupId"),
            )
            for m in reply.get("Messages", [])
        ]

    def change_visibility(self, receipts: list[str], timeout: int) -> set[str]:
        """Hide messages in hand for ``timeout`` more seconds (0 releases them).

        Returns the receipts SQS refused: those messages are no longer ours to hold.
        """
        return self._in_batches(
            self.client.change_message_visibility_batch, receipts, VisibilityTimeout=timeout
        )

    def delete(self, receipts: list[str]) -> set[str]:
        """Delete settled messages; returns the receipts SQS refused (an expired receipt:
        the message comes back, and the journal knows it is settled)."""
        return self._in_batches(self.client.delete_message_batch, receipts)

    def _in_batches(self, call: Callable[..., dict], receipts: list[str], **entry) -> set[str]:
        refused: set[str] = set()
        for start in range(0, len(receipts), SQS_BATCH_LIMIT):
            chunk = receipts[start : start + SQS_BATCH_LIMIT]
            reply = call(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": receipt, **entry}
                    for index, receipt in enumerate(chunk)
                ],
            )
            refused.update(chunk[int(failure["Id"])] for failure in reply.get("Failed", []))
        return refused


class ApiUnavailable(Exception):
    """Try again later: no connection, a timeout, a 5xx or 429, or the device key refused."""


class ApiRejected(Exception):
    """The API answered that this request will never succeed (400, 404, ...)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code


class ApiClient:
    """The device endpoints of the gateway API, authenticated with the device key."""

    def __init__(
        self,
        base_url: str,
        device_key: str,
        timeout: float,
        user_agent: str,
        session: requests.Session | None = None,
        ca_bundle: str = "",
        connections: int = 10,
    ):
        """``connections``: kept open to the API, one per thread that calls it at once (the
        main loop and each port's claims)."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.mount("https://", HTTPAdapter(pool_maxsize=connections))
        self.session.mount("http://", HTTPAdapter(pool_maxsize=connections))
        # TLS is always verified: against ``ca_bundle`` (a private CA) or the system's CAs.
        self.session.verify = ca_bundle or True
        self.session.headers.update({"X-Device-Key": device_key, "User-Agent": user_agent})

    def heartbeat(self, body: dict) -> dict:
        """The answer names the queues the device should poll now (an API of 1.1 or later)."""
        return self._post("/device/heartbeat", body)

    def post_status(self, message_id: str, body: dict) -> dict:
        """Report a status; the answer has the status the API now stores (stale reports change
        nothing) and, for ``sending``, whether this device holds the claim to send."""
        return self._post(f"/device/messages/{quote(message_id, safe='')}/status", body)

    def post_inbound(self, body: dict) -> dict:
        return self._post("/device/inbound", body)

    def credentials(self) -> dict:
        """Short-lived AWS credentials for this device, its queues' URLs and region."""
        return self._post("/device/credentials", {})

    def _post(self, path: str, body: dict) -> dict:
        try:
            response = self.session.post(self.base_url + path, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            raise ApiUnavailable(f"{type(error).__name__}: {error}") from None
        status = response.status_code
        if status in (401, 403):
            raise ApiUnavailable(f"device key refused (HTTP {status}); check device_key")
        if status in (408, 429) or status >= 500:
            raise ApiUnavailable(f"HTTP {status}")
        if status >= 400:
            raise ApiRejected(status, _error_message(response))
        try:
            return response.json()
        except ValueError:
            raise ApiUnavailable(f"HTTP {status} with a body that is not JSON") from None


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        return response.text[:200]
