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
from .validation import Fields

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


def keyword_of(text: str, own: dict | None = None) -> str | None:
    """Whether the whole text is a stop keyword ("out") or a start keyword ("in"): one of
    the defaults, or of the account's own ``stopKeywords`` / ``startKeywords``."""
    own = own or {}
    word = normalized(text)
    if word in _STOPS or word in {normalized(k) for k in own.get("stopKeywords") or ()}:
        return "out"
    if word in _STARTS or word in {normalized(k) for k in own.get("startKeywords") or ()}:
        return "in"
    return None


# --- the account's own keywords and confirmation replies -----------------------------------

MAX_KEYWORDS = 10
MAX_KEYWORD_LENGTH = 20
MAX_REPLY_LENGTH = 320  # two SMS parts of GSM-7 text


def _keywords(name: str):
    def parse(value):
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > MAX_KEYWORDS:
            raise ValidationError.field(name, f"must be a list of at most {MAX_KEYWORDS} words")
        for word in value:
            if not isinstance(word, str) or not 0 < len(normalized(word)) <= MAX_KEYWORD_LENGTH:
                raise ValidationError.field(
                    name, f"each keyword is a word of 1 to {MAX_KEYWORD_LENGTH} characters"
                )
        return sorted(set(value))

    return parse


def _reply(name: str):
    def parse(value):
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_REPLY_LENGTH:
            raise ValidationError.field(
                name, f"must be a text of 1 to {MAX_REPLY_LENGTH} characters, or null"
            )
        return value

    return parse


def settings_view(account_id: str) -> dict:
    """GET /contacts/opt-out: the keywords that count (defaults and own) and the replies."""
    own = accounts.settings_of(account_id, fresh=True).optout
    return {
        "success": True,
        "defaultStopKeywords": list(STOP_KEYWORDS),
        "defaultStartKeywords": list(START_KEYWORDS),
        "stopKeywords": list(own.get("stopKeywords") or []),
        "startKeywords": list(own.get("startKeywords") or []),
        "stopReply": own.get("stopReply"),
        "startReply": own.get("startReply"),
    }


def configure(account_id: str, body: dict) -> dict:
    """PUT /contacts/opt-out: the account's own keywords (added to the defaults) and the SMS
    that confirms a change (null: none). PUT replaces them all."""
    fields = Fields(body)
    stops = fields.check("stopKeywords", _keywords("stopKeywords")) or []
    starts = fields.check("startKeywords", _keywords("startKeywords")) or []
    stop_reply = fields.check("stopReply", _reply("stopReply"))
    start_reply = fields.check("startReply", _reply("startReply"))
    all_stops = _STOPS | {normalized(w) for w in stops}
    all_starts = _STARTS | {normalized(w) for w in starts}
    if all_stops & all_starts:
        fields.errors.append(
            {"field": "startKeywords", "message": "a word cannot both stop and start"}
        )
    fields.done()
    stored = {"stopKeywords": stops, "startKeywords": starts}
    stored |= {"stopReply": stop_reply, "startReply": start_reply}
    Account(account_id).update(
        actions=[Account.optout_settings.set(stored), Account.updated_at.set(clock.now())]
    )
    accounts.forget(account_id)
    return settings_view(account_id)


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
    """A new received SMS or WhatsApp message: a stop or start keyword edits its account's list (never raises:
    the SMS is stored whatever happens here)."""
    if message.account_id in accounts.RESERVED:
        return
    own = accounts.settings_of(message.account_id).optout
    change = keyword_of(message.text, own)
    if change is None:
        return
    try:
        if set_suppressed(message.account_id, message.phone_number, change == "out"):
            announce(
                message.account_id,
                message.phone_number,
                change,
                message.channel,
                message.message_id,
            )
            reply = own.get("stopReply" if change == "out" else "startReply")
            if reply:
                from .messages import outbound

                outbound.send_confirmation(message.account_id, message.phone_number, reply)
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
            "source": source,  # "sms", "whatsapp": their keyword; "api": the account's edit
            "messageId": message_id,
            "timestamp": iso(clock.now()),
        },
    )
