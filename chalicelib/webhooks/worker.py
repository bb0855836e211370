"""The ``webhook_worker`` Lambda: each SQS record is one event, delivered at most once.

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
- Each record is handled on its own: internal errors re-queue that record alone (counted,
  dead-lettered after MAX_INTERNAL_ERRORS). Only if SQS itself refuses the re-queue does
  the record fail, and Lambda's partial batch response (chalicelib/batches.py) brings back
  that record alone; a redelivery is harmless thanks to the claims.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PutError, UpdateError

from .. import clock, metrics
from ..config import settings
from ..models import Webhook, WebhookDelivery
from . import formats, netguard, transport
from .events import SQS_MAX_DELAY, TEST_EVENT, enqueue
from .signing import secret_for
from .transport import DeliveryFailed

log = logging.getLogger("chinqit.webhooks")

USER_AGENT = "Chinqit-Webhooks/1"
RECORD_DAYS = 14  # delivery records outlive every copy of an event on SQS
MAX_INTERNAL_ERRORS = 5  # internal failures of one event before it is dead-lettered


def handle_record(raw: str) -> str:
    """One SQS record of the worker Lambda; raises only when the event could neither be
    handled nor re-queued (then SQS delivers that record again)."""
    outcome = _handle_safely(raw)
    metrics.count("Webhooks", Outcome=outcome or "unsettled")
    if outcome is None:
        raise RuntimeError("webhook event neither handled nor re-queued")
    return outcome


def _handle_safely(raw: str) -> str | None:
    try:
        return handle(raw)
    except Exception:
        log.exception("webhook event failed inside the worker; re-queuing it")
    try:
        event = json.loads(raw)
        event["internalErrors"] = int(event.get("internalErrors", 0)) + 1
        if event["internalErrors"] > MAX_INTERNAL_ERRORS:
            enqueue({**event, "reason": "internal errors"}, dead=True)
            return "dead"
        enqueue(event, delay=_internal_retry_delay())
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
        enqueue({"malformed": raw}, dead=True)
        return "malformed"
    now = clock.unix()
    not_before = event.get("notBefore")
    if isinstance(not_before, (int, float)) and not_before - now >= 1:
        enqueue(event, delay=min(SQS_MAX_DELAY, math.ceil(not_before - now)))  # one hop
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
            enqueue({**event, "reason": failure.reason, "failedAt": int(now)}, dead=True)
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
        enqueue(retry, delay=min(delay, SQS_MAX_DELAY))
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
        expires_at=datetime.fromtimestamp(now, UTC) + timedelta(days=RECORD_DAYS),
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
    at = datetime.fromtimestamp(now, UTC)
    actions: list
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
        raise DeliveryFailed(str(exc), permanent=True) from None
    except netguard.Unresolvable as exc:
        raise DeliveryFailed(str(exc)) from None
    secret = secret_for(webhook.account_id, webhook.secret_salt)
    body, signed = formats.render(webhook.format, event, secret, int(now))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **signed}
    status = transport.post(target, body, headers, config.webhook_timeout)
    if 200 <= status < 300:
        return
    if 300 <= status < 400:  # where it points is the receiver's business, never logged
        raise DeliveryFailed(f"HTTP {status}: redirect not followed")
    raise DeliveryFailed(f"HTTP {status}")
