"""Request-body checks that report every bad field at once, in the contract's error list."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import ValidationError


class Fields:
    """Run field checks, keep their errors, raise them together."""

    def __init__(self, body: dict):
        self.body = body
        self.errors: list[dict] = []

    def check(self, name: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(self.body.get(name))
        except ValidationError as exc:
            self.errors.extend(exc.errors or [{"field": name, "message": exc.message}])
            return None

    def done(self) -> None:
        if self.errors:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors)
            raise ValidationError(f"Validation failed: {detail}", errors=self.errors)


def required_text(name: str, longest: int | None = None) -> Callable[[Any], str]:
    def parse(value):
        if value is None:
            raise ValidationError.field(name, "is required")
        if not isinstance(value, str):
            raise ValidationError.field(name, "must be a string")
        if not value.strip():
            raise ValidationError.field(name, "must not be empty")
        if longest is not None and len(value) > longest:
            raise ValidationError.field(name, f"must be at most {longest} characters")
        return value

    return parse


def choice(name: str, options: Iterable[str], default: str | None) -> Callable[[Any], str | None]:
    options = tuple(options)

    def parse(value):
        if value is None:
            return default
        if not isinstance(value, str) or value.lower() not in options:
            raise ValidationError.field(name, f"must be one of {', '.join(options)}")
        return value.lower()

    return parse
