"""Opt-out: numbers that asked an account to stop (STOP, ARRÊT, توقف...) get none of its SMS.

An inbound SMS whose whole text is a stop keyword puts its sender on the owning account's
suppression list; a start keyword takes it off. Both can be edited through the API too, and
each change is a webhook event (``contact.opted_out``, ``contact.opted_in``). SMS, bulk,
/sendsms and resends to a suppressed number are refused with a 400 that says so; OTPs still
go (a code the person asked for is not marketing).

The list is a string set on the account's item (chalicelib.models.Account): read together
with the quotas, once per SMSGW_KEY_CACHE_SECONDS per Lambda, so the check adds no AWS call
to a warm send. A change is seen at once by the Lambda that made it and by the others within
that period. DynamoDB's 400 KB item limit bounds a list at about MAX_SUPPRESSED numbers.
"""

from __future__ import annotations

import logging
import string
import unicodedata

from pynamodb.exceptions import UpdateError

from . import accounts, clock
from .errors import ValidationError
from .models import Account

log = logging.getLogger("chinqit.optout")

STOP_KEYWORDS = (
    "STOP",
    "ARRET",
    "ARRÊT",
    "DESABONNER",
    "DÉSABONNER",
    "UNSUBSCRIBE",
    "توقف",
    "إيقاف",
)
START_KEYWORDS = ("START", "DEMARRER", "DÉMARRER", "ابدأ")
MAX_SUPPRESSED = 20_000
# Trailing punctuation people add ("Stop.", "STOP !"), Arabic's too.
_PUNCTUATION = string.punctuation + "،؛؟!¡¿«»" + " \t\r\n"


def normalized(text: str) -> str:
    """A keyword as compared: case and accents ignored, Arabic hamza and harakat too."""
    decomposed = unicodedata.normalize("NFKD", text.strip(_PUNCTUATION).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_STOPS = frozenset(normalized(k) for k in STOP_KEYWORDS)
_STARTS = frozenset(normalized(k) for k in START_KEYWORDS)


class OptedOut(ValidationError):
    """A send to a number on the account's suppression list."""


def refusal(number: str, field: str) -> dict:
    return {
        "field": field,
        "message": f"{number} has opted out of your SMS (they sent STOP); "
        "they opt back in by sending START",
    }


def check(account_id: str, number: str, field: str = "phoneNumber") -> None:
    """Raise the 400 of a send to an opted-out number."""
    if is_suppressed(account_id, number):
        error = refusal(number, field)
        raise OptedOut(f"{field}: {error['message']}", errors=[error])


def is_suppressed(account_id: str, number: str) -> bool:
    return number in accounts.settings_of(account_id).suppressed


def listed(account_id: str) -> list[str]:
    return sorted(accounts.settings_of(account_id, fresh=True).suppressed)


def keyword_of(text: str) -> str | None:
    """ "out" or "in" when the whole text is a stop or start keyword."""
    word = normalized(text)
    return "out" if word in _STOPS else "in" if word in _STARTS else None


def set_suppressed(account_id: str, number: str, suppressed: bool) -> bool:
    """Put ``number`` on the list or take it off; True when that changed something."""
    before = is_suppressed(account_id, number)
    action = Account.suppressed.add({number}) if suppressed else Account.suppressed.delete({number})
    try:
        Account(account_id).update(actions=[action, Account.updated_at.set(clock.now())])
    except UpdateError as exc:
        if exc.cause_response_code == "ValidationException" and suppressed:
            raise ValidationError.field(
                "phoneNumber", f"the suppression list is full (about {MAX_SUPPRESSED} numbers)"
            ) from exc
        raise
    accounts.forget(account_id)
    log.info("suppression account=%s suppressed=%s", account_id, suppressed)
    return before != suppressed


def edit(account_id: str, raw_number: str, suppressed: bool) -> dict:
    """PUT / DELETE /contacts/opted-out/{phoneNumber}: the account's own edit of its list."""
    from urllib.parse import unquote

    from .devices import sender_number

    number = sender_number(unquote(raw_number))
    if not number.startswith("+") or not number[1:].isdigit():
        raise ValidationError.field("phoneNumber", "must be a phone number (E.164 or local)")
    if set_suppressed(account_id, number, suppressed):
        announce(account_id, number, "out" if suppressed else "in", "api")
    return {"success": True, "phoneNumber": number, "optedOut": suppressed}


def on_inbound(message) -> None:
    """A new received SMS: a stop or start keyword edits its account's list (never raises:
    the SMS is stored whatever happens here)."""
    change = keyword_of(message.text)
    if change is None or message.account_id in accounts.RESERVED:
        return
    try:
        if set_suppressed(message.account_id, message.phone_number, change == "out"):
            announce(message.account_id, message.phone_number, change, "sms", message.message_id)
    except Exception:
        log.exception(
            "could not apply an opt-%s keyword for account %s", change, message.account_id
        )


def announce(account_id: str, number: str, change: str, source: str, message_id=None) -> None:
    """The ``contact.opted_out`` / ``contact.opted_in`` webhook event of one change."""
    from .messages.views import iso
    from .webhooks.events import notify

    event = "contact.opted_out" if change == "out" else "contact.opted_in"
    notify(
        account_id,
        event,
        {
            "event": event,
            "phoneNumber": number,
            "source": source,  # "sms": their keyword; "api": the account's own edit
            "messageId": message_id,
            "timestamp": iso(clock.now()),
        },
    )
