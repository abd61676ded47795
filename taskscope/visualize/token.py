"""The dashboard's access token: only whoever holds it (the user who started the dashboard)
can read the pages, as with Jupyter.

Listening on loopback does not make a dashboard private: on a shared login node every local
user reaches 127.0.0.1. So the CLI makes a random token at start and prints it in the URL
(`?token=...`). A request carrying the right token gets it back as an HttpOnly, SameSite
cookie and is redirected to the same URL without it (so it leaves the address bar and the
browser history); later requests send the cookie. Scripts may send `Authorization: token
<token>` (or `Bearer`) instead; `--token-file` keeps one token across restarts for them.
Anything else gets 401 (no token) or 403 (a wrong one) with a page that
says what to do.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_PARAM = "token"
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


class TokenFileError(Exception):
    """The --token-file cannot be used; the message says why and what to do."""


def token_from_file(path: Path) -> str:
    """The token kept in `path` (for scrapers and scripts that need the same token across
    restarts), made and written with mode 0600 if the file does not exist. A file that other
    users can read, or that holds no token, is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise TokenFileError(f"cannot create the token file {path}: {exc.strerror}") from exc
    else:
        token = new_token()
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        return token
    try:
        info = os.stat(path)
        if info.st_mode & 0o077:
            raise TokenFileError(
                f"the token file {path} can be read by other users "
                f"(mode {stat.filemode(info.st_mode)}); chmod 600 {path}"
            )
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise TokenFileError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if len(token) < 16 or any(c.isspace() or not c.isprintable() for c in token):
        raise TokenFileError(
            f"the token file {path} must hold one token of at least 16 "
            "characters and no spaces (delete it to have one made)"
        )
    return token


def cookie_name(scope: Scope) -> str:
    """Browsers share cookies between the ports of a host: one name per dashboard port, so
    two dashboards on one machine do not overwrite each other's token."""
    server = scope.get("server") or (None, None)
    return f"taskscope-token-{server[1] or 0}"


def _page(status: int, heading: str, detail: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(heading)} · taskscope</title></head><body style='font-family:sans-serif;"
        f"max-width:40em;margin:3em auto'><h1>{status} {html.escape(heading)}</h1>"
        f"<p>{html.escape(detail)}</p></body></html>"
    ).encode()


HOW_TO = (
    "This dashboard is private to the user who started it. Open the address that "
    "taskscope-visualize printed when it started (it ends in ?token=...), or restart "
    "it to get a new one."
)


def _same_page(scope: Scope, query: str) -> bytes:
    """A relative reference to the requested page with `query` (relative, so that it works
    behind a tunnel or a proxy that serves the dashboard under a prefix)."""
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    last = raw.split(b"?", 1)[0].rsplit(b"/", 1)[-1]
    return b"./" + last + (b"?" + query.encode() if query else b"")


class TokenGate:
    """ASGI middleware: every HTTP request must carry the token (query, cookie or header)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        name = cookie_name(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [value for key, value in query if key == TOKEN_PARAM]
        if given and self._matches(given[-1]):
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
            await self._redirect(send, _same_page(scope, rest), name, given[-1])
            return
        cookie = self._cookie(headers.get("cookie", ""), name)
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        header_token = credentials.strip() if scheme.lower() in ("token", "bearer") else None
        if self._matches(cookie) or self._matches(header_token):
            await self.app(scope, receive, send)
            return
        wrong = bool(given) or cookie is not None or header_token is not None
        if wrong:
            await self._refuse(
                send,
                403,
                "Wrong token",
                "The token this request carries is not this dashboard's. " + HOW_TO,
            )
        else:
            await self._refuse(send, 401, "Token required", HOW_TO)

    @staticmethod
    def _cookie(header: str, name: str) -> str | None:
        # Split by hand: http.cookies gives up on the whole header at the first cookie it
        # finds malformed (another local app's JSON cookie, say), which would lock the user out.
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
        return None

    @staticmethod
    async def _redirect(send: Send, target: bytes, name: str, token: str) -> None:
        cookie = f"{name}={token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", target),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _refuse(send: Send, status: int, heading: str, detail: str) -> None:
        body = _page(status, heading, detail)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8080" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:  # 127.0.0.2 and the like; never a DNS name such as 127.0.0.1.example.com
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class LoopbackHostGate:
    """ASGI middleware for a dashboard on a loopback address: requests must name a loopback
    host. A web page elsewhere can point its own host name at 127.0.0.1 (DNS rebinding) and
    make the user's browser read the dashboard; its requests carry that name, so they are
    refused here. That matters without a token (--no-token); with one it is a second wall."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next(
                (v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"host"),
                "",
            )
            if not is_loopback_name(host_name(host)):
                await TokenGate._refuse(
                    send,
                    403,
                    "Unexpected host name",
                    f"This dashboard listens on a loopback address and answers only requests "
                    f"for localhost or 127.0.0.1, not {host!r}. Open it as http://127.0.0.1:"
                    "PORT/ (through an SSH tunnel from another machine).",
                )
                return
        await self.app(scope, receive, send)
