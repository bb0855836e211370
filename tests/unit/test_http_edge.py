"""Authentication, body parsing, routing and 500s: every answer in the contract's format."""

import json

import pytest

from chalicelib import auth


def test_missing_key_is_401_with_the_seed_body(api):
    response = api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"}, key=None)
    assert response.status_code == 401
    assert response.json == {"success": False, "message": "API key is required"}


@pytest.mark.parametrize("key", ["nope", "cq_live_" + "x" * 43])
def test_unknown_key_is_403_with_the_seed_body(api, key):
    response = api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"}, key=key)
    assert response.status_code == 403
    assert response.json == {"success": False, "message": "Invalid API key"}


def test_revoked_key_is_403(api):
    key, credential = auth.create_key("api", "acme")
    auth.revoke_key(credential.prefix)
    response = api.get("/messages/0f0f", key=key)
    assert response.status_code == 403


def test_device_keys_do_not_open_the_public_api(api):
    key, _ = auth.create_key("device", "phone-1")
    assert api.get("/messages/abc", key=key).status_code == 403


def test_keys_are_stored_only_as_hashes(api):
    from chalicelib.models import Credential

    stored = [c.attribute_values for c in Credential.scan()]
    assert all(api.key not in json.dumps(v, default=str) for v in stored)
    assert any(v["key_hash"] == auth.hash_key(api.key) for v in stored)


def test_health_needs_no_key(api):
    response = api.get("/health", key=None)
    assert response.status_code == 200 and response.json["success"] is True


@pytest.mark.parametrize("raw, field", [("{not json", "body"), ("[1, 2]", "body"), ("", "body")])
def test_malformed_json_is_400(api, raw, field):
    response = api.post("/messages/send", raw=raw)
    assert response.status_code == 400
    assert response.json["success"] is False
    assert response.json["errors"][0]["field"] == field


def test_wrong_content_type_is_400(api):
    response = api.post("/messages/send", raw="message=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert response.json["errors"] == [{"field": "Content-Type", "message": "got text/plain"}]


def test_unknown_route_is_404(api):
    response = api.get("/nowhere", key=None)
    assert response.status_code == 404
    assert response.json == {"success": False, "message": "Route not found", "errors": []}


def test_wrong_method_is_405_in_the_contract_format(api):
    response = api.get("/messages/send")
    assert response.status_code == 405
    assert response.json["success"] is False
    assert response.headers["Allow"] == "POST"


def test_unexpected_failure_is_500_without_internals(api, monkeypatch):
    from chalicelib import queue

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals at /var/task/app.py line 3")

    monkeypatch.setattr(queue, "enqueue_sms", broken)
    response = api.post("/messages/send", {"message": "x", "phoneNumber": "38089336"})
    assert response.status_code == 500
    assert response.json == {"success": False, "message": "Internal server error", "errors": []}
