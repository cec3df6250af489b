"""OAuth 2.1 end to end with the official MCP Python SDK's OAuth client: discovery from the
401 challenge, dynamic client registration, authorization code with PKCE through Warden's real
sign-in and consent pages (filled in headless, with an HTTP client), token exchange, tool calls,
a refresh with rotation, and calls after it. Runs with Warden's state on SQLite and, when
WARDEN_TEST_POSTGRES_URL is set, on PostgreSQL."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, OAuthFlowError, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from warden_fixtures import EMAIL, PASSWORD, project, server, state_backends

REDIRECT_URI = "http://127.0.0.1:33418/callback"


class InMemoryTokenStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None
        self.set_tokens_calls = 0

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.set_tokens_calls += 1

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class ParsedForm:
    action: str | None = None
    method: str = "get"
    inputs: list[dict[str, str]] = field(default_factory=list)  # <input>, <textarea>, <select>
    buttons: list[dict[str, str]] = field(default_factory=list)  # <button>, <input type=submit|image>


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[ParsedForm] = []
        self._cur: ParsedForm | None = None
        self._textarea: dict[str, str] | None = None
        self._select: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v if v is not None else "") for k, v in attrs_list}
        if tag == "form":
            self._cur = ParsedForm(action=attrs.get("action"), method=(attrs.get("method") or "get").lower())
            self.forms.append(self._cur)
            return
        if self._cur is None:
            return
        if tag == "input":
            typ = (attrs.get("type") or "text").lower()
            attrs["type"] = typ
            if typ in ("submit", "image"):
                self._cur.buttons.append(attrs)
            elif typ not in ("button", "reset", "file"):
                self._cur.inputs.append(attrs)
        elif tag == "button":
            attrs["type"] = (attrs.get("type") or "submit").lower()
            if attrs["type"] == "submit":
                self._cur.buttons.append(attrs)
        elif tag == "textarea":
            self._textarea = {"type": "textarea", "name": attrs.get("name", ""), "value": ""}
            self._cur.inputs.append(self._textarea)
        elif tag == "select":
            self._select = {"type": "select", "name": attrs.get("name", ""), "value": "", "_has": ""}
            self._cur.inputs.append(self._select)
        elif tag == "option" and self._select is not None:
            val = attrs.get("value", "")
            if not self._select["_has"] or "selected" in attrs:
                self._select["value"] = val
                self._select["_has"] = "1"

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["value"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._cur = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def parse_first_form(html: str) -> ParsedForm:
    p = _FormParser()
    p.feed(html)
    p.close()
    if not p.forms:
        raise OAuthFlowError("expected an HTML <form> but the page has none")
    return p.forms[0]


# ============================================================================================
# ADAPTER: Warden login / consent HTML.  Everything Warden-specific about the forms lives here.
# ============================================================================================
EMAIL_FIELD_NAMES = ("email", "username", "login")
PASSWORD_FIELD_NAMES = ("password",)
ALLOW_BUTTON_VALUES = ("allow", "approve", "accept", "authorize", "grant", "yes", "consent")
DENY_BUTTON_VALUES = ("deny", "reject", "cancel", "no")


def _form_fields(form: ParsedForm, email: str, password: str, allow_write: bool) -> list[tuple[str, str]]:
    """Turn a parsed form into the list of (name, value) pairs a browser would submit."""
    fields: list[tuple[str, str]] = []
    for inp in form.inputs:
        name = inp.get("name")
        if not name:
            continue
        typ = inp.get("type", "text")
        value = inp.get("value", "")
        if typ in ("checkbox", "radio"):
            checked = "checked" in inp
            # Adapter rule: a checkbox whose name/value mentions "write" is the write-scope toggle.
            if typ == "checkbox" and ("write" in name.lower() or "write" in value.lower()):
                checked = allow_write
            if checked:
                fields.append((name, value or "on"))
            continue
        if name.lower() in EMAIL_FIELD_NAMES:
            value = email
        elif name.lower() in PASSWORD_FIELD_NAMES or typ == "password":
            value = password
        fields.append((name, value))
    # Submit button: prefer an explicit "allow"-like button (e.g. name=decision value=allow);
    # never pick a deny-like one; otherwise use the first named submit button, if any.
    named = [b for b in form.buttons if b.get("name")]
    chosen = next((b for b in named if b.get("value", "").lower() in ALLOW_BUTTON_VALUES), None)
    if chosen is None:
        chosen = next((b for b in named if b.get("value", "").lower() not in DENY_BUTTON_VALUES), None)
    if chosen is not None:
        fields.append((chosen["name"], chosen.get("value", "")))
    return fields


async def drive_login_and_consent(
    http: httpx2.AsyncClient,
    authorize_url: str,
    email: str,
    password: str,
    allow_write: bool,
    *,
    redirect_uri: str = REDIRECT_URI,
    max_steps: int = 10,
) -> str:
    """Drive Warden's login + consent pages; return the final redirect Location (to redirect_uri).

    `http` must keep cookies (httpx2.AsyncClient does by default) and must NOT follow redirects
    (httpx2's default is follow_redirects=False): we follow same-server redirects by hand and stop
    at the first Location that points at `redirect_uri`.
    """
    resp = await http.get(authorize_url)
    for _ in range(max_steps):
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if location.startswith(redirect_uri):
                return location
            resp = await http.get(location)
            continue
        if resp.status_code != 200:
            raise OAuthFlowError(f"unexpected {resp.status_code} from {resp.url}: {resp.text[:500]}")
        form = parse_first_form(resp.text)
        fields = _form_fields(form, email, password, allow_write)
        action = urljoin(str(resp.url), form.action or str(resp.url))
        if form.method == "post":
            resp = await http.post(action, data=_multi(fields))
        else:
            resp = await http.get(action, params=fields)
    raise OAuthFlowError(f"no redirect to {redirect_uri} after {max_steps} steps")


def _multi(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """(name, value) pairs -> dict accepted by httpx2 `data=` (repeated names become lists)."""
    out: dict[str, Any] = {}
    for k, v in fields:
        if k in out:
            out[k] = (out[k] if isinstance(out[k], list) else [out[k]]) + [v]
        else:
            out[k] = v
    return out
# ============================================================================================


# --------------------------------------------------------------------------------------------
# redirect_handler / callback_handler pair
# --------------------------------------------------------------------------------------------
class HeadlessBrowser:
    def __init__(self, email: str, password: str, allow_write: bool) -> None:
        self.email, self.password, self.allow_write = email, password, allow_write
        self.authorization_urls: list[str] = []  # every /authorize URL the provider produced
        self.final_locations: list[str] = []

    async def redirect_handler(self, authorization_url: str) -> None:
        # Called by the provider with the full /authorize URL (response_type, client_id,
        # redirect_uri, state, code_challenge, code_challenge_method=S256, resource, scope).
        self.authorization_urls.append(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        url = self.authorization_urls[-1]
        # Separate client: own cookie jar, no auth, redirects not auto-followed.
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30.0) as http:
            location = await drive_login_and_consent(http, url, self.email, self.password, self.allow_write)
        self.final_locations.append(location)
        q = parse_qs(urlsplit(location).query)
        if "error" in q:
            raise OAuthFlowError(f"authorization error: {q['error'][0]} {q.get('error_description', [''])[0]}")
        if "code" not in q:
            raise OAuthFlowError(f"no code in redirect: {location}")
        return AuthorizationCodeResult(
            code=q["code"][0],
            state=q.get("state", [None])[0],
            # RFC 9207: pass iss through; the SDK checks it == str(AS metadata issuer) exactly,
            # and rejects a missing iss if the AS advertised authorization_response_iss_parameter_supported.
            iss=q.get("iss", [None])[0],
        )




def build_provider(url: str, storage: TokenStorage, browser: HeadlessBrowser) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="warden-interop-test",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    return OAuthClientProvider(
        server_url=url,
        client_metadata=metadata,
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )


@pytest.mark.parametrize("state", state_backends())
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_oauth_sign_in_consent_refresh_and_calls(state, mode):
    with project(state) as (file, _key):
        with server(file) as url:
            storage = InMemoryTokenStorage()
            browser = HeadlessBrowser(EMAIL, PASSWORD, allow_write=False)
            provider = build_provider(url, storage, browser)
            trace: list[str] = []

            async def on_request(request: httpx2.Request) -> None:
                trace.append(f"{request.method} {request.url.path}")

            async def main():
                async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [on_request]}) as http:
                    with anyio.fail_after(60):
                        async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
                            names = {t.name for t in (await client.list_tools()).tools}
                            assert "search_vendors" in names
                            found = await client.call_tool("search_vendors", {"limit": 2})
                            assert not found.is_error
                            assert len(json.loads(found.content[0].text)["rows"]) == 2

                            # Write was not ticked on the consent page: read-only grant.
                            assert storage.tokens.scope == "mcp:read"
                            assert storage.tokens.access_token.startswith("wdn_at_")
                            assert storage.tokens.refresh_token.startswith("wdn_rt_")
                            old_access, old_refresh = storage.tokens.access_token, storage.tokens.refresh_token

                            provider.context.token_expiry_time = time.time() - 1.0  # force a refresh
                            again = await client.call_tool("portfolio_report", {})
                            assert not again.is_error
                            assert storage.tokens.access_token != old_access
                            assert storage.tokens.refresh_token != old_refresh, "refresh tokens rotate"
                            return old_access, old_refresh

            old_access, old_refresh = anyio.run(main)

            # Discovery followed the spec's order, and the user signed in exactly once.
            assert trace[:4] == [
                "POST /mcp",
                "GET /.well-known/oauth-protected-resource/mcp",
                "GET /.well-known/oauth-authorization-server",
                "POST /register",
            ], trace
            assert trace.count("POST /token") == 2, trace
            assert len(browser.authorization_urls) == 1
            location = browser.final_locations[0]
            q = parse_qs(urlsplit(location).query)
            assert q["iss"] == [url.rsplit("/mcp", 1)[0]], location

            async def after():
                async with httpx2.AsyncClient(timeout=30) as http:
                    # The first refresh token was spent by the refresh; presenting it again is
                    # reuse, which must revoke the whole grant: both access tokens die with it.
                    reuse = await http.post(url.rsplit("/mcp", 1)[0] + "/token", data={
                        "grant_type": "refresh_token", "refresh_token": old_refresh,
                        "client_id": storage.client_info.client_id})
                    assert reuse.status_code == 400
                    assert reuse.json()["error"] == "invalid_grant"
                    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                    hdr = {"Accept": "application/json, text/event-stream"}
                    for token in (old_access, storage.tokens.access_token):
                        r = await http.post(url, json=ping, headers={**hdr, "Authorization": f"Bearer {token}"})
                        assert r.status_code == 401, "reuse must revoke every token of the grant"

            anyio.run(after)
