"""A real OpenID Provider for the interop tests: tests/oidc/provider.mjs (npm `oidc-provider`,
run with the pinned Node 22), and helpers to sign in at it headless.

Needs the environment tests/run gives the interop suite: NODE22 (the pinned node binary) and
NODE_MODULES (the pinned tools' node_modules, which holds oidc-provider).

    with oidc_provider(
        clients=[{"client_id": "warden", "client_secret": "s3cret",
                  "redirect_uris": [f"{url}/login/sso/corp/callback"]}],
        users=[{"sub": "u-ana", "email": "ana@acme.example", "email_verified": True,
                "name": "Ana", "groups": ["staff"], "password": "pw"}],
    ) as op:
        op.issuer                    # "http://127.0.0.1:<port>", no trailing slash
        op.set_claims("u-ana", groups=["admins"], email_verified=False)
        op.add_user(sub="u-bo", email="bo@acme.example", password="pw", groups=[])
        op.set_client(client_id="late", client_secret="x", redirect_uris=[...])  # add or replace

Clients may be given later with set_client (clients=[] at start), for a relying party whose
port is known only once it runs.

and, with an httpx2 client that keeps cookies, once a GET has landed on the provider's login page:

    final = provider_login(http, login_page, "ana@acme.example", "pw")

The provider: authorization code flow with PKCE (S256, required for every client), nonce,
state, RFC 9207 `iss` on the redirect, client_secret_basic or client_secret_post, userinfo, and
a refresh token on every code exchange (rotated at each refresh unless
rotate_refresh_tokens=False); a refresh gives a new ID token with the user's current claims.
ID tokens carry email, email_verified, name and groups for the scopes email, profile, groups.
Consent is automatic: one login form post ends in a redirect to the client.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urljoin

import httpx2

PROVIDER_SCRIPT = Path(__file__).resolve().parents[1] / "oidc" / "provider.mjs"
START_TIMEOUT = 20.0


class OidcProvider:
    """A running tests/oidc/provider.mjs."""

    def __init__(self, issuer: str, admin_token: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.issuer = issuer
        self.admin_token = admin_token
        self._proc = proc
        self._log_path = log_path

    @property
    def log(self) -> str:
        """What the provider wrote to stderr so far (its errors explain refused requests)."""
        return self._log_path.read_text(errors="replace")

    def discovery(self) -> dict[str, Any]:
        r = httpx2.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10)
        r.raise_for_status()
        return r.json()

    def _admin(self, method: str, path: str, body: Any = None) -> httpx2.Response:
        r = httpx2.request(
            method,
            f"{self.issuer}/test-admin{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json=body,
            timeout=10,
        )
        if r.status_code >= 400:
            raise AssertionError(f"test-admin {method} {path}: {r.status_code} {r.text}")
        return r

    def set_client(self, *, client_id: str, client_secret: str, redirect_uris: list[str],
                   **metadata: Any) -> None:
        """Add a client, or replace the one with this client_id (e.g. its redirect_uris)."""
        self._admin("POST", "/clients", {"client_id": client_id, "client_secret": client_secret,
                                         "redirect_uris": list(redirect_uris), **metadata})

    def set_claims(self, sub: str, **claims: Any) -> None:
        """Merge claims into a user (e.g. groups=["staff"], email_verified=False); the next
        code exchange, refresh or userinfo call sees them."""
        self._admin("POST", f"/users/{_quote(sub)}", claims)

    def add_user(self, *, sub: str, email: str, password: str, email_verified: bool = True,
                 name: str | None = None, groups: list[str] | None = None, **claims: Any) -> None:
        """Add a user who can sign in with email + password."""
        user = {"sub": sub, "email": email, "email_verified": email_verified, "password": password,
                "groups": list(groups or []), **claims}
        if name is not None:
            user["name"] = name
        self._admin("POST", "/users", user)

    def remove_user(self, sub: str) -> None:
        """Remove a user: their refresh tokens stop working (invalid_grant)."""
        self._admin("DELETE", f"/users/{_quote(sub)}")

    def user(self, sub: str) -> dict[str, Any]:
        """The user's current record (without the password)."""
        return self._admin("GET", f"/users/{_quote(sub)}").json()


def _quote(sub: str) -> str:
    return quote(sub, safe="")


@contextmanager
def oidc_provider(clients: list[dict[str, Any]], users: list[dict[str, Any]], *,
                  admin_token: str | None = None, rotate_refresh_tokens: bool = True,
                  client_auth_methods: list[str] | None = None) -> Iterator[OidcProvider]:
    """Start tests/oidc/provider.mjs on 127.0.0.1, port 0; yield an OidcProvider; kill it after.

    clients: [{"client_id", "client_secret", "redirect_uris": [...]}] (optionally
    "token_endpoint_auth_method"); users: [{"sub", "email", "email_verified", "name",
    "groups", "password"}]. rotate_refresh_tokens=False keeps one refresh token for the grant;
    client_auth_methods (default both client_secret_basic and client_secret_post) is what
    discovery advertises and the token endpoint accepts, e.g. ["client_secret_post"]."""
    node = os.environ.get("NODE22")
    modules = os.environ.get("NODE_MODULES")
    if not node or not modules:
        raise RuntimeError("oidc_provider needs NODE22 and NODE_MODULES (tests/run sets them)")
    with tempfile.TemporaryDirectory(prefix="warden-oidc-") as d:
        config = Path(d) / "config.json"
        cfg: dict[str, Any] = {"clients": clients, "users": users,
                               "rotate_refresh_tokens": rotate_refresh_tokens}
        if admin_token:
            cfg["admin_token"] = admin_token
        if client_auth_methods:
            cfg["client_auth_methods"] = client_auth_methods
        config.write_text(json.dumps(cfg))
        log_path = Path(d) / "stderr.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [node, str(PROVIDER_SCRIPT), str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "NODE_MODULES": modules},
            )
        try:
            ready = _wait_ready(proc, log_path)
            yield OidcProvider(ready["issuer"], ready["admin_token"], proc, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout:
                proc.stdout.close()


def _wait_ready(proc: subprocess.Popen, log_path: Path) -> dict[str, Any]:
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT)
    except queue.Empty:
        raise AssertionError(f"the OpenID Provider did not start in {START_TIMEOUT:.0f} s; "
                             f"stderr:\n{log_path.read_text(errors='replace')}") from None
    if not line:
        proc.wait(timeout=5)
        raise AssertionError(f"the OpenID Provider exited ({proc.returncode}) before it was ready; "
                             f"stderr:\n{log_path.read_text(errors='replace')}")
    return json.loads(line)


# --------------------------------------------------------------------------------------------
# The provider's login page
# --------------------------------------------------------------------------------------------
@dataclass
class _Form:
    action: str | None
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._cur: _Form | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v or "") for k, v in attrs_list}
        if tag == "form":
            self._cur = _Form(attrs.get("action"), (attrs.get("method") or "get").lower())
            self.forms.append(self._cur)
        elif tag == "input" and self._cur is not None and attrs.get("name"):
            if attrs.get("type", "text").lower() not in ("submit", "button", "reset", "image", "file"):
                self._cur.fields[attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._cur = None


def is_provider_login_page(response: httpx2.Response) -> bool:
    """True when the response is provider.mjs's login form."""
    return _login_form(response) is not None


def _login_form(response: httpx2.Response) -> _Form | None:
    if "html" not in response.headers.get("content-type", ""):
        return None
    p = _Forms()
    p.feed(response.text)
    p.close()
    return next((f for f in p.forms if f.method == "post" and (f.action or "").startswith("/interaction/")
                 and (f.action or "").endswith("/login") and "password" in f.fields), None)


def provider_login(client: httpx2.Client | httpx2.AsyncClient, response: httpx2.Response,
                   email: str, password: str):
    """Post the provider's login form found in `response` (a 200 login page, or a 401 one after
    a wrong password) with `email` and `password`, through `client` (its cookie jar must be the
    one that got the page: the interaction cookie is in it). Returns the response to the post.

    Redirects are the client's choice: with follow_redirects=False (httpx2's default) a good
    password gives a 303 to /auth/<uid> on the provider, whose GET (same cookies) is a 303 to the
    client's redirect_uri with code, state and iss; with follow_redirects=True the client goes
    on to the redirect_uri itself (Warden's callback) and the result is what that returns. A
    wrong password gives 401 and the form again. See follow_until() to stop at the callback.

    With an httpx2.AsyncClient this returns a coroutine: `await provider_login(...)`."""
    form = _login_form(response)
    if form is None:
        raise AssertionError(f"not the provider's login page: {response.status_code} {response.url}\n"
                             f"{response.text[:500]}")
    data = {**form.fields, "login": email, "password": password}
    action = urljoin(str(response.url), form.action or str(response.url))
    return client.post(action, data=data)  # an awaitable for an AsyncClient


def follow_until(client: httpx2.Client, response: httpx2.Response, url_prefix: str,
                 max_hops: int = 10) -> str:
    """Follow redirects from `response` by hand with a client that does not follow them itself;
    return the first Location that starts with url_prefix (e.g. Warden's callback URL), without
    requesting it. For an AsyncClient use follow_until_async."""
    for _ in range(max_hops):
        location = _next_location(response, url_prefix)
        if location.startswith(url_prefix):
            return location
        response = client.get(location)
    raise AssertionError(f"no redirect to {url_prefix} within {max_hops} hops")


async def follow_until_async(client: httpx2.AsyncClient, response: httpx2.Response, url_prefix: str,
                             max_hops: int = 10) -> str:
    """follow_until for an httpx2.AsyncClient."""
    for _ in range(max_hops):
        location = _next_location(response, url_prefix)
        if location.startswith(url_prefix):
            return location
        response = await client.get(location)
    raise AssertionError(f"no redirect to {url_prefix} within {max_hops} hops")


def _next_location(response: httpx2.Response, url_prefix: str) -> str:
    if not response.is_redirect:
        raise AssertionError(f"expected a redirect towards {url_prefix}, got {response.status_code} "
                             f"from {response.url}: {response.text[:500]}")
    return urljoin(str(response.url), response.headers["location"])


def jwt_payload(token: str) -> dict[str, Any]:
    """The payload of a JWT, NOT verified (for assertions on what the provider issued)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


__all__ = [
    "OidcProvider",
    "follow_until",
    "follow_until_async",
    "is_provider_login_page",
    "jwt_payload",
    "oidc_provider",
    "provider_login",
]
