"""Domain errors. Each maps to one HTTP status in app.py's single error handler."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error a caller may see; ``status`` is the HTTP status."""

    status = 500
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        errors: list | None = None,
        extra: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.errors = errors or []
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict:
        return {"success": False, "message": self.message, "errors": self.errors, **self.extra}


class _SeedAuthError(GatewayError):
    """Authentication errors keep the seed's exact two-field bodies."""

    def body(self) -> dict:
        return {"success": False, "message": self.message}


class ValidationError(GatewayError):
    """The request body or parameters are invalid."""

    status = 400
    message = "Validation failed"

    @classmethod
    def field(cls, name: str, message: str) -> ValidationError:
        return cls(f"{name}: {message}", errors=[{"field": name, "message": message}])


class BadRequest(GatewayError):
    """The request is well-formed but cannot be carried out (a rule, not a field)."""

    status = 400


class ApiKeyMissing(_SeedAuthError):
    """No credentials were sent."""

    status = 401
    message = "API key is required"


class ApiKeyInvalid(_SeedAuthError):
    """The credentials are unknown, revoked or expired."""

    status = 403
    message = "Invalid API key"


class InvalidToken(GatewayError):
    """A bearer token that is unknown, revoked or expired: RFC 6750 §3.1's 401 and
    challenge, with the contract's body (API keys keep the seed's 403)."""

    status = 401
    message = "The access token is invalid, expired or revoked"

    def __init__(self):
        super().__init__(
            extra={"error": "invalid_token"},
            headers={
                "WWW-Authenticate": (
                    'Bearer realm="chinqit", error="invalid_token", '
                    f'error_description="{self.message}"'
                )
            },
        )


class SignatureInvalid(GatewayError):
    """A signed callback (Meta's webhook) whose signature does not match its body."""

    status = 401
    message = "The request signature is missing or does not match"


class Forbidden(GatewayError):
    """The caller is known but may not do this (a webhook handshake with a wrong token)."""

    status = 403
    message = "Forbidden"


class NotFound(GatewayError):
    """The resource does not exist or belongs to another account."""

    status = 404
    message = "Not found"


class MethodNotAllowed(GatewayError):
    """The route exists but not with this HTTP method."""

    status = 405
    message = "Method not allowed"


class RateLimited(GatewayError):
    """A rate limit is exhausted; ``Retry-After`` says when to try again."""

    status = 429
    message = "Too many requests"

    def __init__(self, message: str, retry_after: float):
        seconds = max(1, int(retry_after))
        super().__init__(
            message, headers={"Retry-After": str(seconds)}, extra={"retryAfter": seconds}
        )


class ServiceUnavailable(GatewayError):
    """Something the gateway needs (DynamoDB, SQS) cannot be reached now."""

    status = 503
    message = "Service unavailable"


class ProviderError(GatewayError):
    """An upstream provider (WhatsApp Cloud API) failed or timed out."""

    status = 502
    message = "Provider error"
