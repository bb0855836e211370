"""The OpenAPI document matches the app: same routes and methods, a valid document, served
without a key, rendered at /docs with a vendored Swagger UI under a strict CSP."""

import json
import subprocess
import sys

import pytest
from openapi_spec_validator import validate

from chalicelib import apidoc
from tests.openapi_check import Answer, violations

METHODS = {"get", "post", "put", "patch", "delete"}


def documented_routes():
    return {
        path: sorted(m.upper() for m in item if m in METHODS)
        for path, item in apidoc.document()["paths"].items()
    }


def test_the_document_lists_exactly_the_routes_of_the_app():
    from app import api

    assert documented_routes() == api.route_table()


def test_the_document_is_valid_openapi_3_1():
    validate(apidoc.document())
    assert apidoc.document()["openapi"].startswith("3.1")


def test_chalice_registers_only_the_real_methods():
    from app import app

    registered = {
        path: sorted(methods) for path, methods in app.routes.items() if path != "/{proxy+}"
    }
    assert registered == documented_routes()


def test_the_check_refuses_an_answer_the_document_does_not_describe():
    assert violations(Answer("GET", "/health", 200, {}, {"success": True, "status": "ok"})) == []
    assert violations(Answer("GET", "/health", 201, {}, {"success": True}))
    assert violations(Answer("POST", "/messages/send", 200, {}, {"success": True, "queued": True}))
    assert violations(Answer("POST", "/otp/send", 429, {}, {"success": False, "message": "slow"}))


def test_the_document_is_served_without_a_key(api):
    response = api.get("/openapi.json", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json == apidoc.document()


def test_docs_page_uses_only_vendored_files_under_a_strict_policy(api):
    response = api.get("/docs", key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "http" not in response.body.decode()  # no CDN


@pytest.mark.parametrize(
    "asset, content_type",
    [
        ("swagger-ui-bundle.js", "application/javascript"),
        ("swagger-ui.css", "text/css"),
        ("init.js", "application/javascript"),
    ],
)
def test_docs_assets_are_served_with_their_type_and_caching(api, asset, content_type):
    response = api.get("/docs/" + asset, key=None)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    assert "max-age" in response.headers["Cache-Control"]


def test_an_unknown_docs_file_is_404(api):
    assert api.get("/docs/..%2Fopenapi.json", key=None).status_code == 404


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PATCH", "/webhook", "DELETE, GET, PUT"),
        ("DELETE", "/health", "GET"),
        ("PUT", "/messages/abc", "DELETE, GET"),
    ],
)
def test_a_method_the_path_lacks_is_405_in_the_contract_format(api, method, path, allowed):
    response = api.call(method, path, {})
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json == {
        "success": False,
        "errors": [],
        "message": f"Method {method} is not allowed here; use {allowed}",
    }


def test_importing_the_app_reads_none_of_the_served_files():
    code = "import app; from chalicelib import assets; print(assets.read.cache_info().currsize)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == 0
