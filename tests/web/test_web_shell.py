"""The web shell on its own: layout escaping, security headers, the guard, static files."""

from __future__ import annotations

import re

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from smallhold.errors import RecordValidationError
from smallhold.web import CSP, AppPages, NavLink, build_web, page_response, render_page
from smallhold.web.shell import KEY_COOKIE, MAX_BODY_BYTES, STATIC_DIR


async def demo_page(request: Request) -> Response:
    return page_response(request, "Demo", "<p id='hello'>hello</p>", active="demo")


async def demo_echo(request: Request) -> Response:
    body = await request.json()
    if not body.get("text"):
        raise RecordValidationError("the text is empty; type something.")
    return JSONResponse({"echo": body["text"]})


async def demo_boom(request: Request) -> Response:
    raise RuntimeError("secret internal detail")


def demo() -> AppPages:
    from starlette.routing import Route

    return AppPages("demo", "Demo <b>app</b>", routes=[
        Route("/", demo_page), Route("/api/echo", demo_echo, methods=["POST"]),
        Route("/api/boom", demo_boom)])


@pytest.fixture
def shell() -> TestClient:
    app = build_web([demo(), AppPages("hidden", "Hidden", routes=[], nav=False)],
                    extra_hosts=["testserver"])
    return TestClient(app, base_url="http://testserver", raise_server_exceptions=False)


def test_the_layout_escapes_everything_but_the_apps_own_markup() -> None:
    page = render_page('<script>alert("t")</script>', "<p>trusted</p>",
                       nav=[NavLink("a", 'A "&" <b>')], active="a",
                       scripts=['/static/x.js"><script>'], data={"api": '"><img src=x>'})
    assert "<p>trusted</p>" in page
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; · smallhold" in page
    assert 'A &quot;&amp;&quot; &lt;b&gt;</a>' in page and 'aria-current="page"' in page
    assert 'data-api="&quot;&gt;&lt;img src=x&gt;"' in page
    assert '/static/x.js&quot;&gt;&lt;script&gt;' in page
    # every script is a same-origin file: nothing inline for the CSP to refuse
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert '<link rel="stylesheet" href="/static/smallhold.css">' in page


def test_pages_carry_the_strict_headers_and_the_nav(shell: TestClient) -> None:
    response = shell.get("/demo/")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"  # conversations are private
    assert 'href="/demo/" aria-current="page">Demo &lt;b&gt;app&lt;/b&gt;</a>' in response.text
    assert "Hidden" not in response.text  # nav=False: mounted, not listed
    assert shell.get("/demo", follow_redirects=False).status_code in (307, 308)


def test_the_index_lists_the_apps(shell: TestClient) -> None:
    response = shell.get("/")
    assert response.status_code == 200
    assert 'href="/demo/"' in response.text and "Demo &lt;b&gt;" in response.text


def test_static_assets_are_served_and_cacheable(shell: TestClient) -> None:
    css = shell.get("/static/smallhold.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "cache-control" not in css.headers
    assert css.headers["x-content-type-options"] == "nosniff"
    for script in ("smallhold.js", "pocket.js"):
        js = shell.get(f"/static/{script}")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert shell.get("/static/nope.css").status_code == 404
    assert shell.get("/static/../web.py").status_code == 404
    # offline: no asset reaches for another host (CDN, web fonts)
    for path in STATIC_DIR.iterdir():
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")  # a name, not a fetch
        assert not re.search(r"https?://", text), path.name


def test_unknown_app_is_a_404_page_or_json(shell: TestClient) -> None:
    page = shell.get("/nope/", headers={"accept": "text/html"})
    assert page.status_code == 404 and "there is no page here" in page.text
    assert page.headers["content-security-policy"] == CSP
    api = shell.get("/nope/api/x")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_the_guard_refuses_a_rebound_host(shell: TestClient) -> None:
    response = shell.get("/demo/", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"
    assert response.headers["content-security-policy"] == CSP
    assert shell.get("/demo/", headers={"host": "127.0.0.1"}).status_code == 200


def test_the_guard_refuses_foreign_origins_and_form_posts(shell: TestClient) -> None:
    foreign = shell.post("/demo/api/echo", json={"text": "hi"},
                         headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    same = shell.post("/demo/api/echo", json={"text": "hi"},
                      headers={"origin": "http://testserver"})
    assert same.status_code == 200 and same.json() == {"echo": "hi"}
    form = shell.post("/demo/api/echo", content=b"text=hi",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert form.json()["error"]["code"] == "unsupported_media_type"
    plain = shell.post("/demo/api/echo", content=b"{}", headers={"content-type": "text/plain"})
    assert plain.status_code == 415


def test_the_guard_refuses_an_oversized_body(shell: TestClient) -> None:
    big = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = shell.post("/demo/api/echo", content=big,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_errors_are_json_with_the_users_message_and_never_a_traceback(
        shell: TestClient) -> None:
    empty = shell.post("/demo/api/echo", json={"text": ""})
    assert empty.status_code == 422
    assert empty.json() == {"error": {"code": "record_invalid",
                                      "message": "the text is empty; type something."}}
    boom = shell.get("/demo/api/boom")
    assert boom.status_code == 500
    assert "secret internal detail" not in boom.text and "Traceback" not in boom.text
    assert boom.json()["error"]["code"] == "internal_error"


def test_app_names_are_checked() -> None:
    with pytest.raises(ValueError, match="web name"):
        AppPages("static", "Static", routes=[])
    with pytest.raises(ValueError, match="web name"):
        AppPages("../x", "X", routes=[])
    with pytest.raises(ValueError, match="share a web name"):
        build_web([demo(), demo()])


def test_a_remote_shell_needs_the_key_which_the_login_link_sets() -> None:
    with pytest.raises(ValueError, match="access key"):
        build_web([demo()], host="0.0.0.0", allow_remote=True)
    app = build_web([demo()], host="0.0.0.0", port=None, allow_remote=True, api_key="k3y/+")
    client = TestClient(app, base_url="http://192.0.2.7")
    assert client.get("/demo/").status_code == 401
    assert client.get("/login?key=wrong", follow_redirects=False).status_code == 401
    login = client.get("/login?key=k3y%2F%2B", follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{KEY_COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert client.get("/demo/").status_code == 200  # the cookie now carries the key
    bearer = TestClient(app, base_url="http://192.0.2.7")
    assert bearer.get("/demo/", headers={"authorization": "Bearer k3y/+"}).status_code == 200
