"""The API document (openapi.json) and its rendering at /docs with a vendored Swagger UI."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from chalice import Response

from ..assets import FileSet, read
from ..errors import NotFound

HERE = Path(__file__).parent
# Swagger UI styles its widgets inline and draws icons as data: images; nothing else is allowed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
CACHE = "public, max-age=3600"
FILES = FileSet(
    HERE,
    {  # what /docs and /docs/{asset} serve
        "docs.html": "docs.html",
        "swagger-ui-bundle.js": "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui.css": "swagger-ui/swagger-ui.css",
        "init.js": "init.js",
    },
    CSP,
    CACHE,
)


@cache
def document() -> dict:
    """The OpenAPI document, parsed once."""
    return json.loads(read(HERE / "openapi.json"))


def document_response() -> Response:
    return Response(
        document(), headers={"Content-Type": "application/json", "Cache-Control": CACHE}
    )


def page_response() -> Response:
    return FILES.response("docs.html")


def asset_response(name: str) -> Response:
    if name == "docs.html":  # the page has its own URL
        raise NotFound("No such file")
    return FILES.response(name)
