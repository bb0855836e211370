"""Webhooks: one signed HTTPS callback per account, fed by an SQS queue and a worker Lambda.

Configuration (``PUT/GET/DELETE /webhook``, ``POST /webhook/test``) lives in the Webhook
table. Producers call :func:`notify`; when the account has a webhook subscribed to the
event, one SQS message per event goes to the webhook queue, and :func:`handle_batch`
(the ``webhook_worker`` Lambda) POSTs it, signed the Standard Webhooks way:

    webhook-id: <event id, the same on every retry>
    webhook-timestamp: <unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>

Design notes
- Secret: ``whsec_`` + base64 of 32 bytes. Not stored: derived with HMAC from the
  server secret (SMSGW_SECRET_KEY or its SSM parameter, chalicelib/server_secret.py) and a random per-webhook salt (the table keeps the salt), so a
  copy of the table alone cannot sign. Shown only in the PUT answer that created or rotated
  it; a PUT that changes the URL or events keeps it unless ``rotateSecret`` is true.
  Changing the server secret changes every webhook secret (customers must rotate).
- Idempotency: a WebhookDelivery record per event id, written with conditions. An attempt
  first claims the event (state "sending" with a short lease, attempt number N); the claim
  fails if the event was delivered or dead-lettered, if attempt N already ran (or is
  running), or if a later attempt exists. So an SQS redelivery or duplicate never POSTs a
  delivered event again and never forks the retry chain. (A Lambda that dies between a 2xx
  and its "delivered" write is the one case where a receiver may see the same webhook-id
  twice: receivers should deduplicate on webhook-id, as Standard Webhooks says.)
- Retries: a failed attempt puts a new SQS message (attempt N+1) with DelaySeconds; delays
  beyond SQS's 900 s cap hop: the message carries ``notBefore`` and the worker re-queues it
  (up to 900 s at a time, no HTTP, no claim) until that time has come. After the last delay
  of SMSGW_WEBHOOK_RETRY_DELAYS the event goes to the webhook dead-letter queue and the
  failure shows on GET /webhook. Refused targets (SSRF guard at delivery) are not retried.
- Each record is handled on its own (Chalice cannot enable Lambda's partial batch
  responses), so one bad record never redelivers the others: internal errors re-queue that
  record alone. Only if SQS itself refuses the re-queue does the batch fail, and a
  redelivered batch is harmless thanks to the claims.
- DNS rebinding: the worker resolves the host, checks every address, then connects to the
  checked address itself (urllib3, the transport under requests) with the original Host
  header, TLS SNI and certificate host name. There is no second DNS lookup to rebind.
- The producers' cost: one GetItem per account per SMSGW_WEBHOOK_CACHE_SECONDS (cached in
  the Lambda, negative answers too), and one SendMessage only when an event is subscribed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from . import netguard, queue
from .config import settings
from .errors import NotFound, ValidationError
from .models import Webhook, WebhookDelivery
from .server_secret import server_secret
from .validation import Fields

log = logging.getLogger("chinqit.webhooks")

EVENTS = ("sms.received", "sms.sent", "sms.delivered", "sms.failed")
DEFAULT_EVENTS = ("sms.received",)
STATUS_EVENTS = {"sent": "sms.sent", "delivered": "sms.delivered", "failed": "sms.failed"}
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"
USER_AGENT = "Chinqit-Webhooks/1"
SQS_MAX_DELAY = 900  # seconds: SQS's DelaySeconds limit
RECORD_DAYS = 14  # delivery records outlive every copy of an event on SQS
MAX_INTERNAL_ERRORS = 5  # internal failures of one event before it is dead-lettered
MAX_CACHED_ACCOUNTS = 10_000
MAX_ADDRESSES_TRIED = 3  # checked addresses tried when a connection fails
EVENT_NAMESPACE = uuid.UUID("2f0b8c1e-5a4d-4f7e-9c61-0e7d5b2a9c33")

clock = time.time  # the worker's clock (unix seconds); tests replace it


def _now() -> float:
    return clock()


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- secrets and signatures ---------------------------------------------------------------


def secret_for(account_id: str, salt: str) -> str:
    """The webhook secret of an account: derived, never stored."""
    digest = hmac.new(
        server_secret(),
        b"chinqit-webhook-secret\0" + account_id.encode() + b"\0" + salt.encode(),
        hashlib.sha256,
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks, v1 = HMAC-SHA256)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --- configuration (the API side) ------------------------------------------------------------


def _url(value):
    if value is None:
        raise ValidationError.field("url", "is required")
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.field("url", "must be a URL string")
    try:
        return netguard.check(value.strip(), settings().webhook_allow_local).url
    except (netguard.UnsafeUrl, netguard.Unresolvable) as exc:
        raise ValidationError.field("url", str(exc)) from None


def _events(value):
    if value is None:
        return list(DEFAULT_EVENTS)
    if not isinstance(value, list):
        raise ValidationError.field(
            "events", f"must be a list of event names ({', '.join(EVENTS)})"
        )
    if not value:
        raise ValidationError.field("events", "must name at least one event")
    unknown = [repr(v) for v in value if v not in EVENTS]
    if unknown:
        raise ValidationError.field(
            "events", f"unknown event {', '.join(unknown)}; known events: {', '.join(EVENTS)}"
        )
    return list(dict.fromkeys(value))


def _flag(name: str):
    def parse(value):
        if value is None:
            return False
        if not isinstance(value, bool):
            raise ValidationError.field(name, "must be true or false")
        return value

    return parse


def configure(account_id: str, body: dict) -> dict:
    """Set the account's webhook; the secret is in the answer only when it is new."""
    fields = Fields(body)
    url = fields.check("url", _url)
    events = fields.check("events", _events)
    rotate = fields.check("rotateSecret", _flag("rotateSecret"))
    fields.done()
    now = datetime.now(UTC)
    salt = secrets.token_urlsafe(24)
    webhook = Webhook(
        account_id, url=url, events=events, secret_salt=salt, created_at=now, updated_at=now
    )
    try:
        webhook.save(Webhook.account_id.does_not_exist())
        new_secret = True
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        actions = [
            Webhook.url.set(url),
            Webhook.events.set(events),
            Webhook.updated_at.set(now),
            Webhook.consecutive_failures.set(0),
        ]
        if rotate:
            actions.append(Webhook.secret_salt.set(salt))
        Webhook(account_id).update(actions=actions, condition=Webhook.account_id.exists())
        new_secret = rotate
    forget(account_id)
    log.info(
        "webhook set account=%s events=%s new_secret=%s", account_id, ",".join(events), new_secret
    )
    return {
        "url": url,
        "events": events,
        "secret": secret_for(account_id, salt) if new_secret else None,
    }


def get(account_id: str) -> Webhook:
    try:
        return Webhook.get(account_id, consistent_read=True)
    except Webhook.DoesNotExist:
        raise NotFound("No webhook is set for this account") from None


def to_json(webhook: Webhook) -> dict:
    return {
        "url": webhook.url,
        "events": list(webhook.events),
        "createdAt": _iso(webhook.created_at),
        "updatedAt": _iso(webhook.updated_at),
        "health": {
            "lastSuccessAt": _iso(webhook.last_success_at),
            "lastFailureAt": _iso(webhook.last_failure_at),
            "lastFailureReason": webhook.last_failure_reason,
            "consecutiveFailures": int(webhook.consecutive_failures or 0),
            "deadLettered": int(webhook.dead_lettered or 0),
            "lastDeadLetterAt": _iso(webhook.last_dead_letter_at),
            "lastDeadLetterEventId": webhook.last_dead_letter_event,
        },
    }


def delete(account_id: str) -> None:
    try:
        Webhook(account_id).delete(condition=Webhook.account_id.exists())
    except DeleteError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise NotFound("No webhook is set for this account") from None
        raise
    finally:
        forget(account_id)


def send_test(account_id: str) -> str:
    """Queue a ``webhook.test`` event (whatever the subscribed events); return its id."""
    get(account_id)
    event_id = new_event_id()
    payload = {
        "event": TEST_EVENT,
        "message": "Test event from Chinqit SMS Gateway",
        "timestamp": _iso(datetime.now(UTC)),
    }
    _enqueue(_new_event(account_id, event_id, TEST_EVENT, payload))
    return event_id


# --- producers -------------------------------------------------------------------------------

# account id -> (monotonic time read, subscribed events or None when there is no webhook)
_cache: dict[str, tuple[float, frozenset | None]] = {}


def forget(account_id: str | None = None) -> None:
    """Drop cached webhook configs (one account, or all)."""
    if account_id is None:
        _cache.clear()
    else:
        _cache.pop(account_id, None)


def subscribed_events(account_id: str) -> frozenset | None:
    """The account's subscribed events (None: no webhook); one GetItem per cache period."""
    hit = _cache.get(account_id)
    now = time.monotonic()
    if hit and now - hit[0] < settings().webhook_cache_seconds:
        return hit[1]
    try:
        events = frozenset(Webhook.get(account_id, attributes_to_get=["events"]).events or ())
    except Webhook.DoesNotExist:
        events = None
    if len(_cache) >= MAX_CACHED_ACCOUNTS:
        _cache.clear()
    _cache[account_id] = (now, events)
    return events


def new_event_id(fact: str | None = None) -> str:
    """``evt_`` + 32 hex digits; a ``fact`` makes it deterministic (one event per fact)."""
    raw = uuid.uuid5(EVENT_NAMESPACE, fact) if fact else uuid.uuid4()
    return "evt_" + raw.hex


def notify(
    account_id: str | None, event_type: str, payload: dict, event_id: str | None = None
) -> str | None:
    """Queue ``payload`` for the account's webhook if it is subscribed to ``event_type``.

    Never raises: a webhook problem must not fail the SMS path (it is logged). Returns the
    event id, or None when nothing was queued.
    """
    if not account_id:
        return None
    try:
        events = subscribed_events(account_id)
        if not events or event_type not in events:
            return None
        event_id = event_id or new_event_id()
        _enqueue(_new_event(account_id, event_id, event_type, payload))
    except Exception:
        log.exception("could not queue webhook event %s for account %s", event_type, account_id)
        return None
    log.info("webhook event queued account=%s event=%s id=%s", account_id, event_type, event_id)
    return event_id


def inbound_payload(message) -> dict:
    """SMSMobileAPI's fields (date/hour: when the gateway stored it), plus event and messageId."""
    added = (message.updated_at or message.created_at).astimezone(UTC)
    received = message.created_at.astimezone(UTC)
    return {
        "event": "sms.received",
        "messageId": message.message_id,
        "date": added.strftime("%Y-%m-%d"),
        "hour": added.strftime("%H:%M:%S"),
        "time_received": received.strftime("%Y-%m-%d %H:%M:%S"),
        "message": message.text,
        "number": message.phone_number,
        "guid": message.message_id,
    }


def notify_inbound(message) -> str | None:
    return notify(
        message.account_id,
        "sms.received",
        inbound_payload(message),
        event_id=new_event_id("sms.received\n" + message.message_id),
    )


def notify_status(message, at: datetime | None = None) -> str | None:
    """An outbound message's status just changed: tell the webhook if it is subscribed."""
    event_type = STATUS_EVENTS.get(message.status)
    if event_type is None:
        return None
    payload = {
        "event": event_type,
        "messageId": message.message_id,
        "status": message.status,
        "phoneNumber": message.phone_number,
        "statusReason": message.status_reason,
        "timestamp": _iso(at or message.updated_at),
    }
    return notify(message.account_id, event_type, payload)


def on_message_event(event) -> None:
    """The lifecycle's subscriber: received SMS and outbound status changes become events."""
    from .messages.events import Change

    if event.change is Change.DELETED:
        return
    if event.message.direction == "inbound":
        notify_inbound(event.message)
    elif event.change is Change.STATUS:
        notify_status(event.message, event.at)


def _new_event(account_id: str, event_id: str, event_type: str, payload: dict) -> dict:
    return {
        "eventId": event_id,
        "accountId": account_id,
        "type": event_type,
        "payload": payload,
        "attempt": 1,
        "createdAt": int(time.time()),
    }


def _enqueue(event: dict, delay: int = 0, dead: bool = False) -> None:
    name = settings().webhook_queue + ("-dlq" if dead else "")
    params = {"QueueUrl": queue.queue_url(name), "MessageBody": json.dumps(event)}
    if delay > 0:
        params["DelaySeconds"] = int(min(SQS_MAX_DELAY, delay))
    queue.sqs().send_message(**params)


# --- the worker ------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent`` failures are not retried."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def handle_batch(bodies) -> list:
    """The worker Lambda: each SQS body is one event, handled on its own.

    Returns each record's outcome. Raises (so the whole batch comes back) only when a
    record could neither be settled nor re-queued.
    """
    bodies = list(bodies)
    if len(bodies) > 1:  # deliveries wait on the network: run them side by side
        with ThreadPoolExecutor(max_workers=min(10, len(bodies))) as pool:
            outcomes = list(pool.map(_handle_safely, bodies))
    else:
        outcomes = [_handle_safely(body) for body in bodies]
    if None in outcomes:
        raise RuntimeError(
            "a webhook event could not be settled nor re-queued; the batch will be redelivered"
        )
    return outcomes


def _handle_safely(raw: str) -> str | None:
    try:
        return handle(raw)
    except Exception:
        log.exception("webhook event failed inside the worker; re-queuing it")
    try:
        event = json.loads(raw)
        event["internalErrors"] = int(event.get("internalErrors", 0)) + 1
        if event["internalErrors"] > MAX_INTERNAL_ERRORS:
            _enqueue({**event, "reason": "internal errors"}, dead=True)
            return "dead"
        _enqueue(event, delay=_internal_retry_delay())
        return "requeued"
    except Exception:
        log.exception("could not re-queue a webhook event")
        return None


def _lease_seconds() -> int:
    return int(2 * settings().webhook_timeout) + 5


def _internal_retry_delay() -> int:
    return max(30, _lease_seconds() + 5)


def handle(raw: str) -> str:
    """Deliver one event (or defer, retry, dead-letter or drop it); return what happened."""
    try:
        event = json.loads(raw)
        event_id, account_id, event_type = event["eventId"], event["accountId"], event["type"]
        attempt = int(event.get("attempt", 1))
        event["payload"]
    except (ValueError, KeyError, TypeError):
        log.error("malformed webhook event dead-lettered: %.200s", raw)
        _enqueue({"malformed": raw}, dead=True)
        return "malformed"
    now = _now()
    not_before = event.get("notBefore")
    if isinstance(not_before, (int, float)) and not_before - now >= 1:
        _enqueue(event, delay=min(SQS_MAX_DELAY, math.ceil(not_before - now)))  # one hop
        return "deferred"
    try:
        webhook = Webhook.get(account_id, consistent_read=True)
    except Webhook.DoesNotExist:
        log.info("webhook event %s dropped: account %s has no webhook now", event_id, account_id)
        return "dropped"
    if event_type != TEST_EVENT and event_type not in webhook.events:
        log.info("webhook event %s dropped: %s is no longer subscribed", event_id, event_type)
        return "dropped"
    if not _claim(event_id, account_id, attempt, now):
        log.info("webhook event %s attempt %s already handled or in flight", event_id, attempt)
        return "duplicate"
    try:
        _deliver(webhook, event, now)
    except DeliveryFailed as failure:
        return _failed(webhook, event, attempt, failure, now)
    except Exception:
        _release(event_id, attempt)
        raise
    _settle(event_id, "delivered")
    _health(account_id, now, success=True)
    log.info("webhook event %s delivered (attempt %s)", event_id, attempt)
    return "delivered"


def _failed(
    webhook: Webhook, event: dict, attempt: int, failure: DeliveryFailed, now: float
) -> str:
    event_id, delays = event["eventId"], settings().webhook_retry_delays
    log.warning("webhook event %s attempt %s failed: %s", event_id, attempt, failure.reason)
    if failure.permanent or attempt > len(delays):
        try:
            _enqueue({**event, "reason": failure.reason, "failedAt": int(now)}, dead=True)
        except Exception:
            _release(event_id, attempt)
            raise
        _settle(event_id, "dead")
        _health(webhook.account_id, now, reason=failure.reason, dead_event=event_id)
        return "dead"
    delay = delays[attempt - 1]
    retry = {**event, "attempt": attempt + 1, "lastError": failure.reason}
    retry.pop("notBefore", None)
    if delay > SQS_MAX_DELAY:
        retry["notBefore"] = int(now) + delay
    try:
        _enqueue(retry, delay=min(delay, SQS_MAX_DELAY))
    except Exception:
        _release(event_id, attempt)
        raise
    _settle(event_id, "retrying")
    _health(webhook.account_id, now, reason=failure.reason)
    return "retrying"


def _claim(event_id: str, account_id: str, attempt: int, now: float) -> bool:
    """Take attempt ``attempt`` of an event; False if it is delivered, dead, or taken."""
    record = WebhookDelivery(
        event_id,
        account_id=account_id,
        state="sending",
        attempt=attempt,
        lease_until=int(now) + _lease_seconds(),
        expires_at=_at(now) + timedelta(days=RECORD_DAYS),
    )
    D = WebhookDelivery
    condition = (
        D.event_id.does_not_exist()
        | (D.state.is_in("sending", "retrying") & (D.attempt < attempt))
        | ((D.state == "sending") & (D.attempt == attempt) & (D.lease_until < int(now)))
    )
    try:
        record.save(condition=condition)
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _settle(event_id: str, state: str) -> None:
    try:
        WebhookDelivery(event_id).update(
            actions=[WebhookDelivery.state.set(state), WebhookDelivery.lease_until.set(0)]
        )
    except Exception:  # the claim's lease still protects the event; log and go on
        log.exception("could not record webhook event %s as %s", event_id, state)


def _release(event_id: str, attempt: int) -> None:
    """Give a claimed attempt back (after an internal error) so it can run again."""
    try:
        WebhookDelivery(event_id).update(
            actions=[WebhookDelivery.lease_until.set(0)],
            condition=(WebhookDelivery.state == "sending") & (WebhookDelivery.attempt == attempt),
        )
    except Exception:
        log.warning("could not release webhook event %s; its lease will expire", event_id)


def _health(
    account_id: str,
    now: float,
    success: bool = False,
    reason: str = "",
    dead_event: str | None = None,
) -> None:
    at = _at(now)
    if success:
        actions = [Webhook.last_success_at.set(at), Webhook.consecutive_failures.set(0)]
    else:
        actions = [
            Webhook.last_failure_at.set(at),
            Webhook.last_failure_reason.set(reason[:500]),
            Webhook.consecutive_failures.add(1),
        ]
        if dead_event:
            actions += [
                Webhook.dead_lettered.add(1),
                Webhook.last_dead_letter_at.set(at),
                Webhook.last_dead_letter_event.set(dead_event),
            ]
    try:
        Webhook(account_id).update(actions=actions, condition=Webhook.account_id.exists())
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            log.exception("could not record webhook health for account %s", account_id)


def _deliver(webhook: Webhook, event: dict, now: float) -> None:
    """One signed POST; returns on 2xx, raises DeliveryFailed otherwise."""
    config = settings()
    try:
        target = netguard.check(webhook.url, config.webhook_allow_local)
    except netguard.UnsafeUrl as exc:
        raise DeliveryFailed(f"refused target: {exc}", permanent=True) from None
    except netguard.Unresolvable as exc:
        raise DeliveryFailed(str(exc)) from None
    body = json.dumps(event["payload"], ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": event["eventId"],
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret_for(webhook.account_id, webhook.secret_salt), event["eventId"], timestamp, body
        ),
    }
    status, location = post(target, body, headers, config.webhook_timeout)
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise DeliveryFailed(
            f"HTTP {status}: redirect not followed"
            + (f" (Location: {location[:200]})" if location else "")
        )
    raise DeliveryFailed(f"HTTP {status}")


def _ca_bundle() -> str | None:
    try:
        import certifi  # requests' CA bundle
    except ImportError:
        return None
    return certifi.where()


def post(target: netguard.Target, body: bytes, headers: dict, timeout: float) -> tuple:
    """POST to the checked address of ``target`` (never re-resolving the name).

    TLS is verified against the URL's host name (SNI and certificate), the Host header is
    the URL's; redirects are not followed. Returns (status, Location header).
    """
    import urllib3  # the transport under requests; imported only by the worker

    limit = urllib3.Timeout(connect=timeout, read=timeout, total=timeout)
    last_error = None
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        if target.scheme == "https":
            name = None if target.is_ip_literal else target.host
            pool = urllib3.HTTPSConnectionPool(
                address,
                target.port,
                timeout=limit,
                retries=False,
                maxsize=1,
                block=False,
                cert_reqs="CERT_REQUIRED",
                ca_certs=_ca_bundle(),
                server_hostname=name,
                assert_hostname=name or address,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                address, target.port, timeout=limit, retries=False, maxsize=1, block=False
            )
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "Host": target.host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                return response.status, response.headers.get("Location")
            finally:
                response.close()
        except (
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.NewConnectionError,
        ) as exc:
            last_error = f"could not connect to {address}: {_short(exc)}"
            continue  # nothing was sent: try the next checked address
        except urllib3.exceptions.TimeoutError:
            raise DeliveryFailed(f"timed out after {timeout:g}s") from None
        except urllib3.exceptions.SSLError as exc:
            raise DeliveryFailed(f"TLS error: {_short(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DeliveryFailed(f"connection error: {_short(exc)}") from None
        finally:
            pool.close()
    raise DeliveryFailed(last_error or "no address to connect to")


def _short(exc: Exception) -> str:
    return str(exc)[:300]
