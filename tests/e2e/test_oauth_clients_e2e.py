"""OAuth2 client credentials with the libraries customers use: authlib and requests-oauthlib,
in both client authentication styles, over HTTP against the local stack."""

import re
import secrets

import pytest
import requests

pytestmark = pytest.mark.e2e

SEND = {"message": "Bonjour", "phoneNumber": "38089336"}


@pytest.fixture
def client(stack, monkeypatch) -> tuple[str, str]:
    """A new OAuth2 client of a new account, made with the operator tool; the stack is on
    plain loopback HTTP, which both libraries refuse unless told it is a test."""
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    output = stack.operator("oauth", "create", "--account", "oauth-" + secrets.token_hex(4))
    return (
        re.search(r"client_id:\s+(\S+)", output).group(1),
        re.search(r"client_secret:\s+(\S+)", output).group(1),
    )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_gets_a_token_and_sends_with_it(stack, client, method):
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(*client, token_endpoint_auth_method=method)
    token = session.fetch_token(stack.url + "/oauth2/token", grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    sent = session.post(stack.url + "/messages/send", json=SEND, timeout=10)
    assert sent.status_code == 200 and sent.json()["success"] is True


@pytest.mark.parametrize("include_client_id", [False, True])  # HTTP Basic, or the body
def test_requests_oauthlib_gets_a_token_and_sends_with_it(stack, client, include_client_id):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session

    client_id, secret = client
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    token = session.fetch_token(
        stack.url + "/oauth2/token",
        client_id=client_id,
        client_secret=secret,
        include_client_id=include_client_id,
    )
    assert token["access_token"].startswith("cq_tok_")
    sent = session.post(stack.url + "/messages/send", json=SEND, timeout=10)
    assert sent.status_code == 200 and sent.json()["success"] is True


def test_a_revoked_token_is_refused_with_the_bearer_challenge(stack, client):
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session(*client)
    token = session.fetch_token(stack.url + "/oauth2/token", grant_type="client_credentials")
    stack.operator("oauth", "revoke", client[0])
    refused = requests.get(
        stack.url + "/messages",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert refused.json()["success"] is False
