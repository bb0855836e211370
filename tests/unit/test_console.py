"""The web console's files as the API serves them: types, caching, policy, catalogues."""

import json
import re
from pathlib import Path

import pytest

from chalicelib import console

STATIC = Path(console.__file__).parent / "static"


def test_the_page_points_at_hashed_assets_under_its_own_folder(api):
    page = api.get("/console", key=None)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    html = page.body.decode()
    assert '<base href="/console/">' in html
    assets = re.findall(r'(?:src|href|content)="([\w.]+)\?v=(\w{12})"', html)
    assert {name for name, _ in assets} == {
        "uplot.css",
        "console.css",
        "fr.json",
        "ar.json",
        "en.json",
        "uplot.js",
        "sms.js",
        "app.js",
    }
    for name, version in assets:
        asset = api.get(f"/console/{name}?v={version}", key=None)
        assert asset.status_code == 200, name
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    stale = api.get("/console/app.js?v=000000000000", key=None)
    assert stale.headers["Cache-Control"] == "public, max-age=300"


@pytest.mark.parametrize(
    "path, base",
    [("/api/console", "/api/console/"), ("/api/console/", "/api/console/"), ("/x", "/console/")],
)
def test_the_base_follows_an_api_gateway_stage_prefix(path, base):
    html = console.page_response(path).body
    assert f'<base href="{base}">' in html


def test_a_hostile_request_path_cannot_inject_markup():
    html = console.page_response('/"><script>x</script>/console').body
    assert "<script>x" not in html


@pytest.mark.parametrize("name", ["index.html", "..%2Fapp.py", "vendor", "nope.js"])
def test_only_listed_files_are_served(api, name):
    assert api.get(f"/console/{name}", key=None).status_code == 404


def test_the_policy_allows_no_inline_script_and_no_framing(api):
    policy = api.get("/console", key=None).headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy


def test_every_catalogue_has_every_text_the_console_uses():
    catalogues = {
        code: json.loads((STATIC / "i18n" / f"{code}.json").read_text())
        for code in console.CATALOGUES
    }
    source = (STATIC / "app.js").read_text()
    used = set(re.findall(r'\bt\("([a-zA-Z]+\.[a-zA-Z.]+|[a-z]+)"', source))
    for code, texts in catalogues.items():
        assert used <= texts.keys(), f"{code} lacks {sorted(used - texts.keys())}"
        assert texts.keys() == catalogues["fr"].keys(), code
    for prefix, names in {
        "status.": ["queued", "sending", "sent", "delivered", "failed", "expired", "received"],
        "event.": ["sms.received", "sms.sent", "sms.delivered", "sms.failed", "device.offline"],
        "format.": ["standard", "smsmobileapi-v2"],
    }.items():
        assert {prefix + n for n in names} <= catalogues["ar"].keys()


def test_the_scripts_never_write_html():
    for script in ("app.js", "sms.js"):
        source = (STATIC / script).read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source)
