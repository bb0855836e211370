"""Static files served by the API itself (the API document, the web console).

Files are read on first request, not at import: a cold start pays nothing for them. Each
set of files has its own Content-Security-Policy; all get the same hardening headers.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from chalice import Response

from .errors import NotFound

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
}
HARDENING = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@cache
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def fingerprint(path: Path) -> str:
    """A short content hash: a URL carrying it may be cached for good."""
    return hashlib.sha256(read(path).encode()).hexdigest()[:12]


class FileSet:
    """Files under ``folder`` served by name; ``names`` maps a URL name to a file path."""

    def __init__(self, folder: Path, names: dict[str, str], csp: str, cache_control: str):
        self.folder = folder
        self.names = names
        self.csp = csp
        self.cache_control = cache_control

    def path(self, name: str) -> Path:
        if name not in self.names:
            raise NotFound("No such file")
        return self.folder / self.names[name]

    def response(self, name: str, body: str | None = None, cache_control: str | None = None):
        path = self.path(name)
        return Response(
            read(path) if body is None else body,
            headers={
                "Content-Type": TYPES[path.suffix],
                "Cache-Control": cache_control or self.cache_control,
                "Content-Security-Policy": self.csp,
                **HARDENING,
            },
        )
