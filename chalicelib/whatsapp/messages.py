"""WhatsApp messages on POST /messages/send (``channel: "whatsapp"``) and /sendsms.

Free text (or a media, with its caption) goes inside the customer-service window
(chalicelib/whatsapp/window.py); an approved template (name, language, parameters) goes
at any time. With ``fallback: "sms"`` the message becomes an SMS, under the same
messageId, when WhatsApp cannot take it: outside the window without a template, when the
Cloud API refuses or fails, or when Meta's webhook later reports it failed.

A message is stored ``sending`` before the Cloud API is called, so a status webhook that
races the API's answer finds it; it is never queued half-way: refused, it is ``failed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import idempotency, optout, phone, quotas, routing
from ..errors import ProviderError, ValidationError
from ..messages import lifecycle, outbound
from ..validation import Fields, choice
from ..wire.status import Status
from . import cloud, window

LONGEST_TEXT = 4096  # the Cloud API's limit on a text body
LONGEST_CAPTION = 1024
LONGEST_URL = 2000
MAX_PARAMETERS = 20
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")  # fr, en_US, ar
_TEMPLATE_FIELDS = frozenset({"name", "language", "parameters"})
MEDIA_KINDS = {  # by the link's file extension; anything else goes as a document
    "jpg": "image",
    "jpeg": "image",
    "png": "image",
    "webp": "image",
    "mp4": "video",
    "3gp": "video",
    "mp3": "audio",
    "ogg": "audio",
    "aac": "audio",
    "amr": "audio",
    "m4a": "audio",
}
OUTSIDE_WINDOW = (
    "the customer has not written to you within 24 hours: WhatsApp allows only an approved "
    "template (template: {name, language, parameters}), or add fallback: sms"
)


@dataclass(frozen=True)
class Request:
    phone_number: str
    text: str | None  # the free text, the media's caption, or the SMS of the fallback
    template: dict | None
    media_url: str | None
    fallback: str | None
    route: routing.Route

    @property
    def free_form(self) -> bool:
        return self.template is None

    def content(self) -> dict:
        """The Cloud API's message object: its ``type`` and that type's fields."""
        if self.template is not None:
            template = {
                "name": self.template["name"],
                "language": {"code": self.template["language"]},
            }
            if self.template["parameters"]:
                parameters = [{"type": "text", "text": p} for p in self.template["parameters"]]
                template["components"] = [{"type": "body", "parameters": parameters}]
            return {"type": "template", "template": template}
        if self.media_url is not None:
            kind = media_kind(self.media_url)
            media = {"link": self.media_url}
            if self.text:
                media["caption"] = self.text
            return {"type": kind, kind: media}
        return {"type": "text", "text": {"body": self.text, "preview_url": False}}

    def logged_text(self) -> str:
        """What the message log shows of it: with a fallback the SMS's text (what it would
        send, after a restart too), else the WhatsApp message."""
        if self.fallback and self.text:
            return self.text
        if self.template is not None:
            shown = f"[template {self.template['name']} ({self.template['language']})]"
            parameters = ", ".join(self.template["parameters"])
            return f"{shown} {parameters}".strip()
        if self.media_url is not None:
            return f"[{media_kind(self.media_url)} {self.media_url}] {self.text or ''}".strip()
        assert self.text is not None
        return self.text


def media_kind(url: str) -> str:
    path = urlsplit(url).path
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return MEDIA_KINDS.get(extension, "document")


def _text(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError.field("message", "must be a non-empty string")
    if len(value) > LONGEST_TEXT:
        raise ValidationError.field("message", f"must be at most {LONGEST_TEXT} characters")
    return value


def _template(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError.field("template", "must be an object: {name, language, parameters}")
    unknown = sorted(set(value) - _TEMPLATE_FIELDS)
    if unknown:
        raise ValidationError.field("template", f"unknown fields: {', '.join(unknown)}")
    name, language = value.get("name"), value.get("language", "fr")
    parameters = value.get("parameters", [])
    if not isinstance(name, str) or not _TEMPLATE_NAME.fullmatch(name):
        raise ValidationError.field(
            "template.name", "must be the approved template's name (a-z, 0-9 and _)"
        )
    if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
        raise ValidationError.field("template.language", "must be a language code: fr, en_US, ar")
    if (
        not isinstance(parameters, list)
        or len(parameters) > MAX_PARAMETERS
        or not all(
            isinstance(p, str) and p.strip() and len(p) <= LONGEST_CAPTION for p in parameters
        )
    ):
        raise ValidationError.field(
            "template.parameters",
            f"must be a list of at most {MAX_PARAMETERS} non-empty strings "
            f"of at most {LONGEST_CAPTION} characters",
        )
    return {"name": name, "language": language, "parameters": parameters}


def media_url(value, field: str = "mediaUrl") -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname or len(value) > LONGEST_URL:
        raise ValidationError.field(
            field, f"must be an https:// link to the media, at most {LONGEST_URL} characters"
        )
    return value


def parse(account_id: str, body: dict) -> Request:
    fields = Fields(body)
    phone_number = fields.check("phoneNumber", phone.normalize)
    text = fields.check("message", _text)
    template = fields.check("template", _template)
    link = fields.check("mediaUrl", media_url)
    fallback = fields.check("fallback", choice("fallback", ("sms",), None))
    if body.get("sendAt") is not None:
        fields.errors.append(
            {"field": "sendAt", "message": "WhatsApp messages cannot be scheduled"}
        )
    if template is not None and link is not None:
        fields.errors.append({"field": "mediaUrl", "message": "cannot go with a template"})
    elif template is None and text is None and link is None and body.get("message") is None:
        fields.errors.append({"field": "message", "message": "is required without a template"})
    if fallback and text is None and body.get("message") is None:
        fields.errors.append(
            {"field": "message", "message": "is required: the SMS of the fallback"}
        )
    if text and link and media_kind(link) == "audio":
        fields.errors.append({"field": "message", "message": "audio goes without a caption"})
    elif text and link and len(text) > LONGEST_CAPTION:
        fields.errors.append(
            {"field": "message", "message": f"a caption is at most {LONGEST_CAPTION} characters"}
        )
    if fallback and text:
        fields.check("message", outbound.check_length)
    fields.done()
    # deviceId and simSlot choose where the fallback SMS leaves from
    route = routing.requested(account_id, body.get("deviceId"), body.get("simSlot"))
    return Request(phone_number, text, template, link, fallback, route)


def send(account_id: str, body: dict, key: idempotency.Key = idempotency.NO_KEY) -> dict:
    """Store and send one WhatsApp message; the answer of POST /messages/send."""
    request = parse(account_id, body)
    cloud.require_configured()
    optout.check(account_id, request.phone_number)
    window_open = not request.free_form or window.is_open(account_id, request.phone_number)
    if not window_open and request.fallback is None:
        raise ValidationError.field("template", OUTSIDE_WINDOW)
    message = outbound.new_outbound(
        account_id,
        request.phone_number,
        request.logged_text(),
        channel="whatsapp",
        status=Status.SENDING,
        route=request.route,
    )
    message.fallback = request.fallback
    answer = {
        "success": True,
        "messageId": message.message_id,
        "channel": "whatsapp",
        "queued": False,
        **({"fallback": request.fallback} if request.fallback else {}),
    }
    idempotency.once(
        key,
        lambda: lifecycle.create(
            message, counted=quotas.sms(account_id), also=lambda t: key.add(t, answer)
        ),
    )
    if not window_open:
        return answer | fall_back(message.message_id, request.text, "outside the 24-hour window")
    try:
        provider_id = cloud.send(
            cloud.recipient(request.phone_number), request.content(), message.message_id
        )
    except ProviderError as error:
        return answer | _not_sent(message.message_id, request, error, key)
    outcome = lifecycle.transition(
        message.message_id,
        Status.SENT,
        provider_message_id=provider_id,
        only_from=(Status.SENDING,),
        channel="whatsapp",
    )
    return answer | {"status": outcome.message.status}


def fall_back(message_id: str, text: str | None, reason: str) -> dict:
    """Send a WhatsApp message that could not go (``reason``) as an SMS, once."""
    outcome = lifecycle.fall_back_to_sms(message_id, reason)
    if outcome.changed and text:
        outbound.dispatch(outcome.message, text)
    return {"channel": outcome.message.channel, "status": outcome.message.status}


def _not_sent(message_id: str, request: Request, error: ProviderError, key) -> dict:
    """The Cloud API did not take it: the SMS fallback, or a failed message and an error
    saying why (a template it does not know: 400; the provider's trouble: 502)."""
    if request.fallback == "sms":
        return fall_back(message_id, request.text, error.message)
    lifecycle.transition(
        message_id, Status.FAILED, reason=error.message, only_from=(Status.SENDING,)
    )
    key.forget()  # a retry with this key sends anew
    code = getattr(error, "code", None)
    if code in cloud.TEMPLATE_ERRORS or code == cloud.OUTSIDE_WINDOW:
        problem = error.message if code in cloud.TEMPLATE_ERRORS else OUTSIDE_WINDOW
        raise ValidationError(
            f"template: {problem}",
            errors=[{"field": "template", "message": problem}],
            extra={"messageId": message_id},
        )
    error.extra["messageId"] = message_id
    raise error
