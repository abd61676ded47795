"""The dashboard's access token: without it no page, asset or JSON is served."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from taskscope.visualize.app import create_app

TOKEN = "a-test-token-0123456789"
RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


def test_no_token_no_page(parsl_db: Path):
    client = TestClient(create_app(parsl_db, token=TOKEN))
    for path in (
        "/",
        f"/workflow/{RUN}/",
        f"/workflow/{RUN}/?format=json",
        "/static/plotly.min.js",
        "/static/style.css",
        "/no/such/page",
    ):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "?token=" in response.text and "diamond-sample" not in response.text
    for bad in ("?token=wrong", "?token=", f"?token={TOKEN}x"):
        assert client.get("/" + bad).status_code == 403
    assert client.get("/", headers={"cookie": "taskscope-token-80=wrong"}).status_code == 403
    assert client.get("/", headers={"cookie": "%%%;;;=\x7f"}).status_code == 401


def test_token_in_url_becomes_a_cookie_and_leaves_the_url(parsl_db: Path):
    client = TestClient(create_app(parsl_db, token=TOKEN))
    first = client.get(f"/workflow/{RUN}/?token={TOKEN}&gantt_page=2", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "./?gantt_page=2"
    cookie = first.headers["set-cookie"]
    assert f"={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get(f"/workflow/{RUN}/?gantt_page=2")  # the cookie jar sends it now
    assert page.status_code == 200 and "diamond-sample" in page.text
    task = client.get(f"/workflow/{RUN}/task/1?token={TOKEN}", follow_redirects=False)
    assert task.headers["location"] == "./1"


def test_other_apps_malformed_cookies_do_not_lock_the_user_out(parsl_db: Path):
    client = TestClient(create_app(parsl_db, token=TOKEN))
    header = (
        'prefs={"a": [1, 2]}; bad cookie=\\x; taskscope-token-80=' + TOKEN + "; _xsrf=2|abc|def"
    )
    assert client.get("/", headers={"cookie": header}).status_code == 200


def test_scripts_may_send_the_token_in_a_header(parsl_db: Path):
    client = TestClient(create_app(parsl_db, token=TOKEN))
    response = client.get("/?format=json", headers={"authorization": f"token {TOKEN}"})
    assert response.status_code == 200 and response.json()["sections"] is not None
    assert client.get("/", headers={"authorization": "token nope"}).status_code == 403


def test_token_none_serves_anyone(parsl_db: Path):
    assert TestClient(create_app(parsl_db, token=None)).get("/").status_code == 200


def test_token_file_is_made_private_and_kept(tmp_path: Path):
    import stat

    from taskscope.visualize.token import token_from_file

    path = tmp_path / "token"
    first = token_from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 40
    assert token_from_file(path) == first  # the same token after a restart


def test_token_file_others_can_read_or_without_a_token_is_refused(tmp_path: Path):
    import pytest

    from taskscope.visualize.token import TokenFileError, token_from_file

    path = tmp_path / "token"
    path.write_text("a-long-enough-token-value\n")
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        token_from_file(path)
    path.chmod(0o600)
    assert token_from_file(path) == "a-long-enough-token-value"
    path.write_text("short\n")
    with pytest.raises(TokenFileError, match="at least 16"):
        token_from_file(path)


def test_bearer_scheme_is_accepted_for_scrapers(parsl_db: Path):
    client = TestClient(create_app(parsl_db, token=TOKEN))
    assert client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/metrics").status_code == 401


def test_a_loopback_dashboard_refuses_other_host_names(parsl_db: Path):
    """DNS rebinding: a page on evil.example points its name at 127.0.0.1; the browser's
    requests then name evil.example and are refused, token or not."""
    app = create_app(parsl_db, loopback_hosts_only=True)
    for base in (
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "http://127.0.0.2",
    ):
        assert TestClient(app, base_url=base).get("/").status_code == 200, base
    for base in (
        "http://evil.example:8080",
        "http://127.0.0.1.evil.example:8080",
        "http://10.0.0.1:8080",
        "http://[fe80::1]:8080",
    ):
        response = TestClient(app, base_url=base).get("/")
        assert response.status_code == 403 and "loopback" in response.text, base
