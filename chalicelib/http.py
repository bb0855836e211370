"""The HTTP edge: routing, authentication, JSON parsing and error mapping, in one place.

Chalice's own errors (415 for an unlisted content type, 405, its 500 page) do not follow
the contract's format. Every path is registered with its real methods only, without a
content-type list, and dispatched here; Chalice's own 405 (a method the path does not
have) is rewritten by an HTTP middleware. Each answer, success or failure, goes out in
the contract's shape.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from chalice import Response

from . import auth, idempotency
from .errors import GatewayError, MethodNotAllowed, NotFound, ValidationError

log = logging.getLogger("chinqit.http")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Call:
    """What a view gets: the parsed request and who made it."""

    request: Any  # chalice.app.Request
    principal: auth.Principal | None
    path_params: dict  # the {placeholders} of the route
    route: str = ""  # the route's path as registered, e.g. /messages/{message_id}

    @property
    def account_id(self) -> str:
        """The calling account (routes with auth "api")."""
        if self.principal is None or self.principal.account_id is None:
            raise RuntimeError("this route is not authenticated with an API key")
        return self.principal.account_id

    @property
    def device_id(self) -> str:
        """The calling device (routes with auth "device")."""
        if self.principal is None or self.principal.device_id is None:
            raise RuntimeError("this route is not authenticated with a device key")
        return self.principal.device_id

    @property
    def content_type(self) -> str:
        return (self.request.headers.get("content-type") or "").split(";")[0].strip().lower()

    def form(self) -> dict:
        """A form-encoded body as a dict ({} when the body is not form-encoded)."""
        return dict(self.form_fields())

    def form_fields(self) -> list[tuple[str, str]]:
        """A form-encoded body's fields in order, repeats kept ([] when not form-encoded)."""
        if self.content_type != "application/x-www-form-urlencoded":
            return []
        return parse_qsl(
            (self.request.raw_body or b"").decode("utf-8", "replace"), keep_blank_values=True
        )

    def query_and_body(self) -> dict:
        """Query parameters, overridden by a form or JSON body: for GET-or-POST endpoints."""
        values = dict(self.query_params)
        if not self.request.raw_body:
            return values
        if self.content_type == "application/json":
            values.update(self.json())
        else:
            values.update(self.form())
        return values

    def json(self) -> dict:
        """The body as a JSON object, or a 400 that says what is wrong with it."""
        content_type = self.content_type
        if content_type != "application/json":
            raise ValidationError(
                "Content-Type must be application/json",
                errors=[{"field": "Content-Type", "message": f"got {content_type or 'none'}"}],
            )
        try:
            body = json.loads(self.request.raw_body or b"")
            json.dumps(body, ensure_ascii=False).encode()  # refuses lone surrogates ("\ud800")
        except (ValueError, UnicodeError, RecursionError) as exc:
            raise ValidationError(
                "Malformed JSON body", errors=[{"field": "body", "message": str(exc)[:200]}]
            ) from None
        if not isinstance(body, dict):
            raise ValidationError(
                "The JSON body must be an object",
                errors=[{"field": "body", "message": "expected an object"}],
            )
        return body

    @property
    def query_params(self) -> dict:
        return self.request.query_params or {}


def error_response(error: GatewayError) -> Response:
    return Response(error.body(), status_code=error.status, headers=error.headers)


class Router:
    """Registers views on a Chalice app; ``auth`` names the key kind a route needs."""

    def __init__(self, app):
        self.app = app
        self.views: dict[str, dict[str, Callable]] = {}
        app.register_middleware(self._contract_method_not_allowed, "http")

    def route(self, path: str, method: str, auth: str | None = "api", key_param: str | None = None):
        """Register ``view`` for ``method`` on ``path``.

        ``auth``: the kind of key required (None: public). ``key_param``: a query or form
        parameter that may carry the API key too (SMSMobileAPI's ``apikey``).
        """

        def register(view):
            self.views.setdefault(path, {})[method] = view
            dispatch = self._dispatcher(path, view, auth, key_param)
            self.app.route(
                path, methods=[method], content_types=[], name=_handler_name(method, path)
            )(dispatch)
            return view

        return register

    def route_table(self) -> dict[str, list[str]]:
        """Every path with its methods, as registered."""
        return {path: sorted(views) for path, views in self.views.items()}

    def not_found(self, path: str, explain: Callable[[str], str | None] = lambda _: None):
        """Answer 404 in the contract's format for everything no route matches;
        ``explain(path)`` may say why a path people look for is not there."""
        self._explain = explain
        self.app.route(path, methods=METHODS, content_types=[])(self._not_found)

    def _not_found(self, **_params):
        proxied = (self.app.current_request.uri_params or {}).get("proxy+") or ""
        path = "/" + proxied  # not context["path"]: behind API Gateway it holds the stage
        return error_response(NotFound(self._explain(path) or "Route not found"))

    def _contract_method_not_allowed(self, request, get_response):
        """Chalice answers a method a path lacks itself (405, its own body): restate it."""
        response = get_response(request)
        if response.status_code != 405 or not _is_chalice_error(response):
            return response
        path = request.context.get("resourcePath")
        allowed = ", ".join(sorted(self.views.get(path, {})))
        return error_response(
            MethodNotAllowed(
                f"Method {request.method} is not allowed here; use {allowed}",
                headers={"Allow": allowed},
            )
        )

    def _dispatcher(self, path: str, view: Callable, kind: str | None, key_param: str | None):
        def dispatch(**params):
            request = self.app.current_request
            started = time.perf_counter()
            call = Call(request, None, params, path)
            try:
                if kind:
                    presented = auth.presented_key(request, kind)
                    if not presented.key and key_param:
                        key = call.query_and_body().get(key_param)
                        presented = auth.Presented(key if isinstance(key, str) else None)
                    call.principal = auth.authenticate(presented, kind)
                response = view(call)
            except idempotency.Replayed as replay:
                response = Response(replay.answer, headers={"Idempotent-Replayed": "true"})
            except GatewayError as error:
                response = error_response(error)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, path)
                response = error_response(GatewayError())
            status = response.status_code if isinstance(response, Response) else 200
            log.info(
                "%s %s -> %s",
                request.method,
                path,
                status,
                extra=_request_fields(call, response, status, started),
            )
            return response

        return dispatch


def _request_fields(call: Call, response, status: int, started: float) -> dict:
    """The request's log fields (a key prefix, never the key)."""
    body = response.body if isinstance(response, Response) else response
    principal = call.principal
    fields = {
        "route": call.route,
        "method": call.request.method,
        "status": status,
        "latencyMs": round((time.perf_counter() - started) * 1000, 1),
        "apiRequestId": (call.request.context or {}).get("requestId"),
        "keyPrefix": principal.key_prefix if principal else None,
        "accountId": principal.account_id if principal else None,
        "deviceId": principal.device_id if principal else None,
    }
    if isinstance(body, dict) and isinstance(body.get("messageId"), str):
        fields["messageId"] = body["messageId"]
    return {k: v for k, v in fields.items() if v is not None}


def _handler_name(method: str, path: str) -> str:
    return method.lower() + "_" + "".join(c if c.isalnum() else "_" for c in path)


def _is_chalice_error(response: Response) -> bool:
    return isinstance(response.body, dict) and "Code" in response.body
