"""Team login: token -> signed cookie, CSRF on the form, no open redirects."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient

from racedash.auth import COOKIE_NAME


async def fetch(server, path: str, **kwargs):
    client = AsyncHTTPClient()
    return await client.fetch(server.url + path, raise_error=False, follow_redirects=False, **kwargs)


def team_cookie(response) -> str | None:
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith(COOKIE_NAME + "="):
            return header.split(";")[0]
    return None


async def test_login_link_sets_a_signed_cookie(server):
    token = server.app.access.token
    response = await fetch(server, f"/login?token={token}")
    assert response.code == 302 and response.headers["Location"] == "/recordings"
    cookie = team_cookie(response)
    assert cookie and "HttpOnly" in ";".join(response.headers.get_list("Set-Cookie"))
    assert server.app.access.is_team_environ({"HTTP_COOKIE": cookie})
    assert not server.app.access.is_team_environ({"HTTP_COOKIE": cookie[:-3] + "abc"})
    assert not server.app.access.is_team_environ({"HTTP_COOKIE": f"{COOKIE_NAME}=team"})


async def test_wrong_token_is_refused(server):
    response = await fetch(server, "/login?token=guess")
    assert response.code == 403 and team_cookie(response) is None


@pytest.mark.parametrize(
    "target",
    # Browsers strip tabs and newlines and read "\\" as "/": each of these would lead off-site.
    ["//evil.example/", "https://evil.example/", "/\\\\evil.example", "/\t/evil.example", "/\n/evil.example",
     "\t//evil.example", "/\\evil.example", "http:evil.example", ""],
)
async def test_no_open_redirect(server, target):
    token = server.app.access.token
    response = await fetch(server, "/login?" + urlencode({"token": token, "next": target}))
    assert response.headers["Location"] == "/recordings"


async def test_login_form_needs_its_xsrf_token(server):
    token = server.app.access.token
    forged = await fetch(server, "/login", method="POST", body=urlencode({"token": token}))
    assert forged.code == 403 and team_cookie(forged) is None

    form = await fetch(server, "/login")
    xsrf_cookie = next(h.split(";")[0] for h in form.headers.get_list("Set-Cookie") if h.startswith("_xsrf="))
    xsrf_field = re.search(r'name="_xsrf" value="([^"]+)"', form.body.decode()).group(1)
    response = await fetch(
        server,
        "/login",
        method="POST",
        body=urlencode({"token": token, "_xsrf": xsrf_field}),
        headers={"Cookie": xsrf_cookie},
    )
    assert response.code == 302 and team_cookie(response)


@pytest.mark.parametrize("settings_changes", [{"team_token": "configured-team-token"}])
async def test_configured_team_token_is_used(server_with, settings_changes):
    assert server_with.app.access.token == "configured-team-token"
    assert not server_with.app.access.generated
    response = await fetch(server_with, "/login?token=configured-team-token")
    assert response.code == 302


async def test_a_same_site_next_is_kept(server):
    token = server.app.access.token
    response = await fetch(server, "/login?" + urlencode({"token": token, "next": "/dashboard/x?y=1"}))
    assert response.headers["Location"] == "/dashboard/x?y=1"


async def test_a_new_team_token_logs_old_cookies_out(server, settings, io_loop):
    from racedash.app import make_app

    response = await fetch(server, f"/login?token={server.app.access.token}")
    cookie = team_cookie(response)
    assert server.app.access.is_team_environ({"HTTP_COOKIE": cookie})
    # Same server secret, another team token (a restart with RACEDASH_TEAM_TOKEN rotated).
    rotated = make_app(settings.replace(team_token="the-new-token"))
    assert rotated.access.cookie_secret == server.app.access.cookie_secret
    assert not rotated.access.is_team_environ({"HTTP_COOKIE": cookie})


async def test_failed_logins_are_limited_per_address(server):
    for _ in range(10):
        assert (await fetch(server, "/login?token=guess")).code == 403
    assert (await fetch(server, "/login?token=guess")).code == 429
    # Even the right token waits: a guesser must not learn it hit.
    assert (await fetch(server, f"/login?token={server.app.access.token}")).code == 429


@pytest.mark.parametrize("settings_changes", [{"trust_proxy_headers": True}])
async def test_cookie_is_secure_behind_tls(server_with):
    server = server_with
    token = server.app.access.token
    plain = await fetch(server, f"/login?token={token}")
    assert "Secure" not in ";".join(plain.headers.get_list("Set-Cookie"))
    proxied = await fetch(server, f"/login?token={token}", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in ";".join(h for h in proxied.headers.get_list("Set-Cookie") if h.startswith(COOKIE_NAME))


@pytest.mark.parametrize("settings_changes", [{"public_url": "https://race.example"}])
async def test_cookie_is_secure_with_an_https_public_url(server_with):
    response = await fetch(server_with, f"/login?token={server_with.app.access.token}")
    assert "Secure" in ";".join(h for h in response.headers.get_list("Set-Cookie") if h.startswith(COOKIE_NAME))
