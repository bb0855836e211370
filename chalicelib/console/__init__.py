"""The web console at /console/: static files from the Lambda package, same origin as the API.

The page is a shell; everything it shows comes from the API's own routes, called by
``app.js`` with the credential the user signed in with (kept in sessionStorage only).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from chalice import Response

from ..assets import FileSet, fingerprint, read

STATIC = Path(__file__).parent / "static"
CATALOGUES = ("fr", "ar", "en")  # French is the default
# uPlot writes styles through the CSSOM (element.style), which style-src does not govern.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
FILES = FileSet(
    STATIC,
    {
        "index.html": "index.html",
        "app.js": "app.js",
        "sms.js": "sms.js",
        "console.css": "console.css",
        "uplot.js": "vendor/uPlot.iife.min.js",
        "uplot.css": "vendor/uPlot.min.css",
        **{f"{code}.json": f"i18n/{code}.json" for code in CATALOGUES},
    },
    CSP,
    "public, max-age=300",
)
FOREVER = "public, max-age=31536000, immutable"
_VERSIONED = re.compile(r"\{\{v:([\w.]+)\}\}")


def page_response(request_path: str | None) -> Response:
    """The shell page; asset URLs carry a content hash, so they are cached for good."""
    page = read(FILES.path("index.html"))
    page = page.replace("{{base}}", html.escape(_base(request_path)))
    page = _VERSIONED.sub(lambda m: f"{m[1]}?v={fingerprint(FILES.path(m[1]))}", page)
    return FILES.response("index.html", body=page, cache_control="no-cache")


def asset_response(name: str, query: dict | None) -> Response:
    if name == "index.html":  # the page has its own URL
        name = "missing"
    versioned = (query or {}).get("v") == fingerprint(FILES.path(name))
    return FILES.response(name, cache_control=FOREVER if versioned else None)


def _base(request_path: str | None) -> str:
    """The console's folder as the browser sees it: behind an API Gateway stage the
    request path carries the stage ("/api/console"); a missing trailing slash is fine."""
    path = (request_path or "").rstrip("/")
    return path + "/" if path.endswith("/console") else "/console/"
