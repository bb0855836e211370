"""DynamoDB tables, one PynamoDB model each. Table names come from chalicelib.config."""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
)
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from . import aws, clock
from .config import settings
from .wire.status import Status


def is_expired(expires_at, now: datetime | None = None) -> bool:
    """TTL deletion is lazy (moto never deletes): every read checks expiry itself."""
    return expires_at is not None and expires_at <= (now or clock.now())


class StatusAttribute(UnicodeAttribute):
    """A message status, read back as a :class:`Status`."""

    def deserialize(self, value: str) -> Status:
        return Status(value)


class _Meta:
    region = None  # botocore picks AWS_REGION / AWS_DEFAULT_REGION
    billing_mode = "PAY_PER_REQUEST"
    # Bounded like every AWS call (chalicelib/aws.py); PynamoDB counts retries, not tries.
    connect_timeout_seconds = settings().aws_connect_timeout
    read_timeout_seconds = settings().aws_read_timeout
    max_retry_attempts = settings().aws_max_attempts - 1


@functools.lru_cache(maxsize=1)
def connection() -> Connection:
    """The one DynamoDB connection (one botocore client) of the container.

    PynamoDB gives each model a connection, and so a client, of its own: ~35 ms each on a
    cold Lambda. Models and transactions share this one instead.
    """
    shared = Connection(
        connect_timeout_seconds=_Meta.connect_timeout_seconds,
        read_timeout_seconds=_Meta.read_timeout_seconds,
        max_retry_attempts=_Meta.max_retry_attempts,
    )
    # PynamoDB makes a botocore session of its own (per thread) unless one is there: give it
    # the container's, so the DynamoDB client is built on what the other clients loaded.
    shared._local.session = aws.session()
    aws.settled(shared.client)  # built now, and kept out of the collector's scans
    return shared


def transaction() -> TransactWrite:
    """A DynamoDB transaction on the shared connection, with a ClientRequestToken of its own.

    The SDK retries a call whose answer was lost; with the token DynamoDB answers the retry
    as it answered the first call (for 10 minutes) instead of cancelling it on the first
    call's own writes (a 500 for a request that had succeeded).
    """
    return TransactWrite(connection=connection(), client_request_token=str(uuid.uuid4()))


class _Table(Model):
    """Base of the models: their table connections share ``connection()``."""

    @classmethod
    def _get_connection(cls):
        table = super()._get_connection()
        shared = connection()
        if table.connection is not shared:
            try:
                shared.add_meta_table(table.connection.get_meta_table(cls.Meta.table_name))
            except ValueError:  # another model of the same table registered it already
                pass
            table.connection = shared
        return table


class Credential(_Table):
    """A hashed secret: an API key, a device key, or (later) an OAuth2 client or token."""

    class Meta(_Meta):
        table_name = settings().keys_table

    key_hash = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()  # "api" (API keys and OAuth2 tokens) | "device" | "oauth_client"
    owner_id = UnicodeAttribute()  # account id for API keys, device id for device keys
    name = UnicodeAttribute(default="")
    prefix = UnicodeAttribute()  # first characters of the key, safe to show
    created_at = UTCDateTimeAttribute(default=clock.now)
    revoked = BooleanAttribute(default=False)
    expires_at = TTLAttribute(null=True)
    # Id used to scope per-key state (OTPs, rate limits); OAuth2 tokens share their client's.
    scope_id = UnicodeAttribute(null=True)
    secret_hash = UnicodeAttribute(null=True)  # OAuth2 clients: SHA-256 of the client secret
    parent = UnicodeAttribute(null=True)  # OAuth2 tokens: key_hash of the client that issued them


class AccountCreatedIndex(GlobalSecondaryIndex):
    """An account's messages, newest first (the message log)."""

    class Meta:
        index_name = "account-created"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class SentToIndex(GlobalSecondaryIndex):
    """Outbound SMS a device handed to the network, by recipient, newest first: whose
    message went from which line (device and slot) to a number (the claim on its replies).

    Sparse: only messages a device (or WhatsApp: no device_id) reported sent, delivered or
    read carry ``sent_to``.
    """

    class Meta:
        index_name = "sent-to"
        projection = IncludeProjection(["account_id", "device_id", "sent_slot"])

    sent_to = UnicodeAttribute(hash_key=True)
    sent_at = UTCDateTimeAttribute(range_key=True)


class WaitingIndex(GlobalSecondaryIndex):
    """Outbound SMS still ``queued``, oldest first, spread over WAITING_SHARDS keys: what
    the outbox sweep (chalicelib/outbox.py) checks. Sparse: ``waiting_shard`` exists only
    while a message is queued (lifecycle sets and removes it in the same writes)."""

    class Meta:
        index_name = "waiting"
        projection = KeysOnlyProjection()

    waiting_shard = UnicodeAttribute(hash_key=True)
    waiting_since = UTCDateTimeAttribute(range_key=True)


WAITING_SHARDS = 8  # spreads the index's writes over partitions


def waiting_shard(message_id: str, kind: str = "waiting") -> str:
    """The WaitingIndex key of a message: ``waiting#N`` while queued, ``scheduled#N`` while
    scheduled (then ``waiting_since`` is its time to go)."""
    return f"{kind}#{int(hashlib.sha256(message_id.encode()).hexdigest(), 16) % WAITING_SHARDS}"


class Message(_Table):
    """One SMS, outbound or inbound, with its delivery status."""

    class Meta(_Meta):
        table_name = settings().messages_table

    message_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    direction = UnicodeAttribute(default="outbound")  # "outbound" | "inbound"
    kind = UnicodeAttribute(default="sms")  # "sms" | "otp"
    channel = UnicodeAttribute(default="sms")  # "sms" | "whatsapp"
    fallback = UnicodeAttribute(null=True)  # WhatsApp: "sms" = sent as SMS if WhatsApp fails
    fallback_reason = UnicodeAttribute(null=True)  # why it was (then channel is "sms")
    phone_number = UnicodeAttribute()
    sent_to = UnicodeAttribute(null=True)  # = phone_number once a device handed it to the network
    # OTP texts are stored with the code masked; the full text only travels on the queue.
    text = UnicodeAttribute()
    encoding = UnicodeAttribute()
    segments = NumberAttribute()
    status = StatusAttribute()  # changed only by chalicelib.messages.lifecycle
    status_reason = UnicodeAttribute(null=True)
    device_id = UnicodeAttribute(null=True)
    provider_message_id = UnicodeAttribute(null=True)  # WhatsApp's wamid
    created_at = UTCDateTimeAttribute(default=clock.now)
    updated_at = UTCDateTimeAttribute(default=clock.now)
    sent_at = UTCDateTimeAttribute(null=True)
    delivered_at = UTCDateTimeAttribute(null=True)
    # After this an undelivered OTP is pointless: the bridge marks it expired instead of sending.
    send_before = UTCDateTimeAttribute(null=True)
    send_at = UTCDateTimeAttribute(null=True)  # scheduled: not before then (sendAt)
    verified_at = UTCDateTimeAttribute(null=True)  # OTPs: when the code was verified
    read = BooleanAttribute(null=True)  # inbound only: marked read by the account
    route_device = UnicodeAttribute(null=True)  # the device the sender asked for (deviceId)
    sim_slot = NumberAttribute(null=True)  # and its SIM slot (simSlot)
    sent_slot = NumberAttribute(null=True)  # the SIM slot it left from, as its device said
    waiting_shard = UnicodeAttribute(null=True)  # while queued: the WaitingIndex key
    waiting_since = UTCDateTimeAttribute(null=True)  # and since when (created or resent)
    requeued_at = UTCDateTimeAttribute(null=True)  # the outbox sweep queued it again then
    requeues = NumberAttribute(null=True)  # how many times it did
    dead_letters = NumberAttribute(null=True)  # times a never-tried copy was dead-lettered
    purge_at = TTLAttribute(null=True)

    by_account = AccountCreatedIndex()
    by_sent_to = SentToIndex()
    waiting = WaitingIndex()


class RequestRecord(_Table):
    """A request made with an Idempotency-Key, and the answer it got (chalicelib/idempotency.py).

    Kept in the rate-limits table, whose items are all keyed by a string and expire within
    a day or so: one table fewer to provision and to grant.
    """

    class Meta(_Meta):
        table_name = settings().rate_limits_table

    bucket = UnicodeAttribute(hash_key=True)  # "idempotency#" + a hash of account, route, key
    fingerprint = UnicodeAttribute()  # of the request's method, path, query and body
    answer = UnicodeAttribute()  # the JSON body it was answered
    expires_at = TTLAttribute()


class WhatsAppWindow(_Table):
    """A customer's 24-hour WhatsApp customer-service window with one account: opened by
    their last message to it, free text may go to them until ``expires_at``."""

    class Meta(_Meta):
        table_name = settings().rate_limits_table

    bucket = UnicodeAttribute(hash_key=True)  # "wa-window#" + account id + "#" + phone
    expires_at = TTLAttribute()


class KeptWebhookEvents(_Table):
    """Webhook events the webhook queue could not take, in a list per shard, oldest first,
    until the outbox sweep queues them (chalicelib/webhooks/kept.py)."""

    class Meta(_Meta):
        table_name = settings().rate_limits_table

    bucket = UnicodeAttribute(hash_key=True)  # "webhook-kept#" + shard
    events = ListAttribute(of=UnicodeAttribute, default=list)  # the queue bodies, as JSON
    taken = NumberAttribute(default=0)  # sweeps that took from the list: one wins at a time
    expires_at = TTLAttribute()  # pushed back by every event kept


class Otp(_Table):
    """The live OTP for one (account, phone, channel); a new send replaces it."""

    class Meta(_Meta):
        table_name = settings().otps_table

    otp_id = UnicodeAttribute(hash_key=True)
    code_hash = UnicodeAttribute()
    attempts_left = NumberAttribute()
    used = BooleanAttribute(default=False)
    message_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute(default=clock.now)
    expires_at = TTLAttribute()


class RateCounter(_Table):
    """Requests counted in one fixed window of one rate limit."""

    class Meta(_Meta):
        table_name = settings().rate_limits_table

    bucket = UnicodeAttribute(hash_key=True)
    # "count" in the table; named otherwise here, as Model.count() is PynamoDB's own
    requests = NumberAttribute(attr_name="count", default=0)
    expires_at = TTLAttribute()


class LineAttribute(MapAttribute):
    """One SIM line of a device, as its bridge last reported it."""

    slot = NumberAttribute()
    number = UnicodeAttribute()  # +222XXXXXXXX
    operator = UnicodeAttribute(null=True)  # chinguitel, mattel, mauritel; None: unknown
    operator_reported = BooleanAttribute(default=False)  # set by the bridge, not the prefix
    signal_percent = NumberAttribute(null=True)
    state = UnicodeAttribute(null=True)  # protocol.LINE_STATES; None: not reported
    state_reason = UnicodeAttribute(null=True)
    resumes_at = UTCDateTimeAttribute(null=True)


class DeviceAccountIndex(GlobalSecondaryIndex):
    """The devices dedicated to an account (sparse: shared-pool devices have no account)."""

    class Meta:
        index_name = "account-devices"
        projection = AllProjection()

    account_id = UnicodeAttribute(hash_key=True)


class Device(_Table):
    """A registered phone or modem host running device_bridge."""

    class Meta(_Meta):
        table_name = settings().devices_table

    device_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute(default="")
    account_id = UnicodeAttribute(null=True)  # the account it is dedicated to; None: shared pool
    created_at = UTCDateTimeAttribute(default=clock.now)
    last_seen_at = UTCDateTimeAttribute(null=True)
    driver = UnicodeAttribute(null=True)
    info: MapAttribute = MapAttribute(
        null=True
    )  # signal, battery, bridge version, as last reported
    lines = ListAttribute(of=LineAttribute, null=True)  # its SIM lines, slot 1 first
    offline_since = UTCDateTimeAttribute(null=True)  # set by presence.watch, cleared on return
    polls_own_queue = BooleanAttribute(null=True)  # its bridge takes SMS addressed to it

    by_account = DeviceAccountIndex()


class Account(_Table):
    """What the operator set for one account; an account without an item has the defaults."""

    class Meta(_Meta):
        table_name = settings().accounts_table

    account_id = UnicodeAttribute(hash_key=True)
    quotas: MapAttribute = MapAttribute(null=True)  # name -> number, over quotas.DEFAULTS
    # With dedicated devices all offline, may its SMS leave from the shared pool?
    shared_fallback = BooleanAttribute(default=False)
    suppressed = UnicodeSetAttribute(null=True)  # numbers that opted out (chalicelib.optout)
    optout_settings: MapAttribute = MapAttribute(null=True)  # its own keywords and replies
    updated_at = UTCDateTimeAttribute(default=clock.now)


class Webhook(_Table):
    """The one webhook of an account: where events go, which ones, and how delivery goes.

    The signing secret is not stored: it is derived from ``secret_salt`` and the server's
    secret (chalicelib.webhooks.secret_for), so the table alone does not reveal it.
    """

    class Meta(_Meta):
        table_name = settings().webhooks_table

    account_id = UnicodeAttribute(hash_key=True)
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute)
    secret_salt = UnicodeAttribute()
    format = UnicodeAttribute(null=True)  # chalicelib.webhooks.formats; None: "standard"
    created_at = UTCDateTimeAttribute(default=clock.now)
    updated_at = UTCDateTimeAttribute(default=clock.now)
    # Delivery health, shown by GET /webhook
    last_success_at = UTCDateTimeAttribute(null=True)
    last_failure_at = UTCDateTimeAttribute(null=True)
    last_failure_reason = UnicodeAttribute(null=True)
    consecutive_failures = NumberAttribute(default=0)
    dead_lettered = NumberAttribute(default=0)
    last_dead_letter_at = UTCDateTimeAttribute(null=True)
    last_dead_letter_event = UnicodeAttribute(null=True)


class WebhookDelivery(_Table):
    """Where one webhook event stands: the worker's idempotency record (conditional writes)."""

    class Meta(_Meta):
        table_name = settings().webhook_deliveries_table

    event_id = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    state = UnicodeAttribute()  # "sending" | "retrying" | "delivered" | "dead"
    attempt = NumberAttribute()  # the latest attempt started (1 = first delivery)
    lease_until = NumberAttribute(default=0)  # unix seconds: a "sending" claim is held until then
    expires_at = TTLAttribute()


ALL_MODELS = (
    Credential,
    Message,
    Otp,
    RateCounter,
    RequestRecord,
    Device,
    Account,
    Webhook,
    WebhookDelivery,
)
