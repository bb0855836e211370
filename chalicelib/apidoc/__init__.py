"""The API document (openapi.json) and its rendering at /docs with a vendored Swagger UI.

Files are read on first request, not at import: a cold start pays nothing for them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from chalice import Response

from ..errors import NotFound

HERE = Path(__file__).parent
ASSETS = {  # what /docs/{asset} serves: name -> (file, content type)
    "swagger-ui-bundle.js": (
        "swagger-ui/swagger-ui-bundle.js",
        "application/javascript; charset=utf-8",
    ),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "init.js": ("init.js", "application/javascript; charset=utf-8"),
}
# Swagger UI styles its widgets inline and draws icons as data: images; nothing else is allowed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
CACHE = "public, max-age=3600"


@cache
def document() -> dict:
    """The OpenAPI document, parsed once."""
    return json.loads(_read("openapi.json"))


@cache
def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def document_response() -> Response:
    return Response(
        document(), headers={"Content-Type": "application/json", "Cache-Control": CACHE}
    )


def page_response() -> Response:
    return _file_response("docs.html", "text/html; charset=utf-8")


def asset_response(name: str) -> Response:
    if name not in ASSETS:
        raise NotFound("No such file")
    return _file_response(*ASSETS[name])


def _file_response(name: str, content_type: str) -> Response:
    return Response(
        _read(name),
        headers={
            "Content-Type": content_type,
            "Cache-Control": CACHE,
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
        },
    )
