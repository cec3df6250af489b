"""Sign-in through the organisation's identity provider, end to end against a real OpenID
Provider (npm `oidc-provider`, tests/oidc/provider.mjs) and the real `warden` binary.

- The official MCP Python SDK's OAuth client, driven headless: Warden's sign-in page,
  "Continue with corp", the provider's login form, Warden's consent page, tool calls; then a
  write, which Warden answers with a step-up challenge, so the SDK authorizes again and the
  person (signing in through corp again) ticks "change data"; the write is previewed and
  confirmed. The person gets an account (provisioned) and a membership from the mapping rules.
- Resync: at each OAuth refresh of that grant Warden re-reads the person's claims at the
  provider. Moved from `staff` to `readers`, they become a guest (writes refused); out of
  every mapped group, the refresh is refused, the grant revoked, none of their access tokens
  works any more, and signing in again through corp is refused.
- Warden as a relying party refusing what it must: a state that is not the browser's, a state
  replayed, a code issued to another client, an unverified e-mail that matches an existing
  account, a person no mapping rule admits. Each is a 403 page naming the reason, no session,
  and an `sso_refused` record with its rule.

Needs NODE22 and NODE_MODULES (see oidc_fixture.py) besides WARDEN_BIN; the PostgreSQL halves
run when WARDEN_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthFlowError
from mcp.client.streamable_http import streamable_http_client

from oidc_fixture import (
    OidcProvider,
    follow_until,
    is_provider_login_page,
    jwt_payload,
    oidc_provider,
    provider_login,
)
from test_oauth import (
    REDIRECT_URI,
    HeadlessBrowser,
    InMemoryTokenStorage,
    _form_fields,
    _multi,
    build_provider,
    parse_first_form,
)
from warden_fixtures import EMAIL, WARDEN, project, state_backends, warden

CLIENT_ID = "warden"
CLIENT_SECRET = "s3cret-corp"
HTTP_TIMEOUT = 20.0
FLOW_TIMEOUT = 90.0

LOGIN_SECTION = """
login:
  providers:
    - name: corp
      issuer: {issuer}
      client_id: {client_id}
      client_secret: {client_secret}
      scopes: [openid, email, profile, groups]
      provision: true
      link_verified_email: true
      resync: true
      map:
        - when: "has(claims.groups) && 'staff' in claims.groups"
          org: acme
          role: member
        - when: "has(claims.groups) && 'readers' in claims.groups"
          org: acme
          role: guest
"""


# --------------------------------------------------------------------------------------------
# Warden with its log kept (for failure messages), the provider, and the project wired together
# --------------------------------------------------------------------------------------------
@contextmanager
def logged_server(file: Path) -> Iterator[tuple[str, list[str]]]:
    """Like warden_fixtures.server, but keeps what Warden writes on stderr: yields (MCP URL,
    the log lines so far)."""
    proc = subprocess.Popen(
        [WARDEN, "serve", "-p", str(file), "--bind", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "WARDEN_LOG": "info"},
    )
    lines: list[str] = []
    url = None
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        m = re.search(r"serving MCP on (https?://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "warden did not report its address:\n" + "\n".join(lines)
    threading.Thread(target=lambda: [lines.append(l.rstrip("\n")) for l in proc.stderr], daemon=True).start()
    try:
        yield url, lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class Sso:
    op: OidcProvider
    file: Path
    url: str  # the MCP URL
    base: str  # Warden's base URL
    log: list[str]  # Warden's stderr so far

    @property
    def callback(self) -> str:
        return f"{self.base}/login/sso/corp/callback"

    def server_log(self, last: int = 40) -> str:
        return "\n".join(self.log[-last:])

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        out = warden("log", "-p", str(self.file), "--json", "--limit", "1000")
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        for r in rows:
            if isinstance(r.get("detail"), str):
                try:
                    r["detail"] = json.loads(r["detail"])
                except ValueError:
                    pass
        return [r for r in rows if event is None or r["event"] == event]

    def users(self) -> str:
        return warden("user", "list", "-p", str(self.file))


@contextmanager
def sso_project(state: str, users: list[dict[str, Any]]) -> Iterator[Sso]:
    """A provider with `users`, an init project (org acme, admin ana) whose login section
    points at it, Warden serving it, and Warden registered at the provider as client 'warden'."""
    with oidc_provider(clients=[], users=users) as op, project(state) as (file, _key):
        text = file.read_text()
        assert not re.search(r"(?m)^login:", text), "the init project already has a login section; merge it"
        file.write_text(text + LOGIN_SECTION.format(issuer=op.issuer, client_id=CLIENT_ID,
                                                    client_secret=CLIENT_SECRET))
        with logged_server(file) as (url, log):
            base = url.rsplit("/mcp", 1)[0]
            op.set_client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                          redirect_uris=[f"{base}/login/sso/corp/callback"],
                          grant_types=["authorization_code", "refresh_token"])
            yield Sso(op, file, url, base, log)


# --------------------------------------------------------------------------------------------
# Warden's sign-in page: the provider's button
# --------------------------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []  # (class, href, text)
        self._cur: list[str] | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            attrs = {k: v or "" for k, v in attrs_list}
            self._cur = [attrs.get("class", ""), attrs.get("href", ""), ""]

    def handle_data(self, data: str) -> None:
        if self._cur is not None:
            self._cur[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._cur is not None:
            self.links.append((self._cur[0], self._cur[1], self._cur[2].strip()))
            self._cur = None


def provider_button(page: httpx2.Response, label: str = "corp") -> str:
    """The absolute URL of the sign-in page's "Continue with <label>" button."""
    p = _Links()
    p.feed(page.text)
    p.close()
    for cls, href, text in p.links:
        if "button" in cls.split() and text == f"Continue with {label}":
            return urljoin(str(page.url), href)
    raise AssertionError(f"Warden's sign-in page at {page.url} offers no 'Continue with {label}' button "
                         f"(links: {p.links}): {_page_text(page.text)[:400]}")


def is_warden_sign_in_page(page: httpx2.Response) -> bool:
    return "<title>Sign in · Warden</title>" in page.text


def set_cookie_names(response: httpx2.Response) -> set[str]:
    """The names of the cookies a response sets (not those it clears with Max-Age=0)."""
    names = set()
    for v in response.headers.get_list("set-cookie"):
        name, _, rest = v.partition("=")
        value = rest.split(";", 1)[0]
        if value and "max-age=0" not in v.lower():
            names.add(name.strip())
    return names


# --------------------------------------------------------------------------------------------
# The headless browser for the MCP SDK: sign-in through the provider, then consent
# --------------------------------------------------------------------------------------------
class SignInRefused(OAuthFlowError):
    """Warden answered the sign-in with its 'Sign-in refused' page."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"{response.status_code} at {response.url}: {_page_text(response.text)[:400]}")
        self.status = response.status_code
        self.text = response.text


def _page_text(page: str) -> str:
    """The visible text of an HTML page, on one line."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<style.*?</style>|<[^>]+>", " ", page, flags=re.S))).strip()


@dataclass
class Consent:
    """A consent page Warden showed, as the headless person saw it."""
    url: str
    text: str
    write_box: bool  # the "Also let it change data" checkbox was offered
    fields: list[tuple[str, str]]  # what the person submitted


async def sign_in_through_provider(http: httpx2.AsyncClient, authorize_url: str, base: str,
                                   email: str, password: str, allow_write: bool,
                                   consents: list[Consent]) -> str:
    """From the client's /authorize URL to the redirect to REDIRECT_URI (returned): Warden's
    sign-in page, its 'Continue with corp' button, the provider's login form, back through
    Warden's callback to /authorize, the consent page (appended to `consents`). `http` keeps
    cookies and does not follow redirects. Raises SignInRefused on Warden's refusal page."""
    seen: list[str] = []
    resp = await http.get(authorize_url)
    for _ in range(20):
        seen.append(f"{resp.status_code} {resp.request.method} {resp.url.copy_with(query=None)}")
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if location.startswith(REDIRECT_URI):
                return location
            resp = await http.get(location)
            continue
        if resp.status_code == 403 and "Sign-in refused" in resp.text:
            raise SignInRefused(resp)
        if resp.status_code not in (200, 401):
            raise OAuthFlowError(f"unexpected {resp.status_code} from {resp.url}: {_page_text(resp.text)[:500]}"
                                 f"; steps: {' -> '.join(seen)}")
        if is_provider_login_page(resp):
            assert resp.status_code == 200, f"the provider refused the password: {resp.text[:300]}"
            resp = await provider_login(http, resp, email, password)
            continue
        if is_warden_sign_in_page(resp):
            # Warden's sign-in page (at /login, or shown by /authorize itself): take the
            # provider's button, not the password form.
            resp = await http.get(provider_button(resp))
            continue
        # Warden's consent page.
        if "<form" not in resp.text or 'value="allow"' not in resp.text:
            raise OAuthFlowError(f"expected Warden's consent form at {resp.url} ({resp.status_code}), got: "
                                 f"{_page_text(resp.text)[:600]}; steps: {' -> '.join(seen)}")
        form = parse_first_form(resp.text)
        fields = _form_fields(form, email, password, allow_write)
        consents.append(Consent(str(resp.url), _page_text(resp.text),
                                any(i.get("name") == "write" and i.get("type") == "checkbox" for i in form.inputs),
                                fields))
        action = urljoin(str(resp.url), form.action or str(resp.url))
        resp = await (http.post(action, data=_multi(fields)) if form.method == "post"
                      else http.get(action, params=fields))
    raise OAuthFlowError("no redirect to the client after 20 steps: " + " -> ".join(seen))


class SsoBrowser(HeadlessBrowser):
    """The person, for the SDK's redirect_handler/callback_handler. Each authorization opens
    a fresh browser (no cookies), so each is a sign-in through the provider."""

    def __init__(self, base: str, email: str, password: str, allow_write: bool) -> None:
        super().__init__(email, password, allow_write)
        self.base = base
        self.refusals: list[SignInRefused] = []
        self.consents: list[Consent] = []

    async def callback_handler(self) -> AuthorizationCodeResult:
        url = self.authorization_urls[-1]
        async with httpx2.AsyncClient(follow_redirects=False, timeout=HTTP_TIMEOUT) as http:
            try:
                location = await sign_in_through_provider(http, url, self.base, self.email, self.password,
                                                          self.allow_write, self.consents)
            except SignInRefused as e:
                self.refusals.append(e)
                raise
        self.final_locations.append(location)
        q = parse_qs(urlsplit(location).query)
        if "error" in q or "code" not in q:
            raise OAuthFlowError(f"no code in the redirect to the client: {location}")
        return AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0],
                                       iss=q.get("iss", [None])[0])


@dataclass
class TokenCall:
    grant_type: str
    status: int
    body: dict[str, Any]


def token_recorder(calls: list[TokenCall]):
    async def on_response(response: httpx2.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/token":
            await response.aread()
            try:
                body = response.json()
            except ValueError:
                body = {"raw": response.text}
            sent = parse_qs(response.request.content.decode())
            calls.append(TokenCall(sent.get("grant_type", ["?"])[0], response.status_code, body))
    return on_response


async def confirmed_write(client: Client, finding_id: int, note: str):
    """update_finding_status previewed, then confirmed with the preview's token."""
    args = {"finding_id": finding_id, "status": "in_progress", "note": note}
    preview = await client.call_tool("update_finding_status", args)
    text = preview.content[0].text
    m = re.search(r"wdn_cf_[A-Za-z0-9_-]+", text)
    if not (preview.is_error and text.startswith("Confirmation required") and m):
        return preview  # refused before any preview
    return await client.call_tool("update_finding_status",
                                  {**args, "confirm": True, "confirmation_token": m.group(0)})


def _fmt(records: list[dict[str, Any]]) -> str:
    keys = ("event", "org", "user_email", "decision", "rule", "reason", "detail")
    return "\n".join(json.dumps({k: r.get(k) for k in keys}) for r in records)


# ============================================================================================
# 1 + 2. The MCP Python SDK signs in through the provider; resync on refresh
# ============================================================================================
BO = {"sub": "u-bo", "email": "bo@acme.example", "email_verified": True, "name": "Bo Corp",
      "groups": ["staff"], "password": "bo-pw"}


@pytest.mark.parametrize("state", state_backends())
def test_python_sdk_signs_in_through_the_identity_provider(state):
    with sso_project(state, users=[BO]) as sso:
        storage = InMemoryTokenStorage()
        browser = SsoBrowser(sso.base, BO["email"], BO["password"], allow_write=True)
        provider = build_provider(sso.url, storage, browser)
        tokens: list[TokenCall] = []

        async def main():
            async with httpx2.AsyncClient(auth=provider, timeout=HTTP_TIMEOUT,
                                          event_hooks={"response": [token_recorder(tokens)]}) as http:
                with anyio.fail_after(FLOW_TIMEOUT):
                    async with Client(streamable_http_client(sso.url, http_client=http), cache=None) as client:
                        # The 401 sent the person through corp to a consent for reading.
                        names = {t.name for t in (await client.list_tools()).tools}
                        assert "search_vendors" in names, names
                        found = await client.call_tool("search_vendors", {"limit": 2})
                        assert not found.is_error, found
                        assert len(json.loads(found.content[0].text)["rows"]) == 2
                        assert storage.tokens.scope == "mcp:read", storage.tokens.scope
                        findings = await client.call_tool("list_findings", {"status": "open", "limit": 3})
                        ids = [r["id"] for r in json.loads(findings.content[0].text)["rows"]]
                        assert len(ids) == 3, ids
                        # A write: 403 insufficient_scope, the SDK authorizes again (step-up), the
                        # person signs in through corp again and ticks "change data"; then the
                        # preview and the confirmed write.
                        done = await confirmed_write(client, ids[0], "as a member, via corp")
                        assert not done.is_error, f"a member may write: {done}"
                        assert set(storage.tokens.scope.split()) == {"mcp:read", "mcp:write"}, storage.tokens.scope
                        names = {t.name for t in (await client.list_tools()).tools}
                        assert "update_finding_status" in names, names
                        return ids

        try:
            ids = anyio.run(main)
        except BaseException:
            print("warden log:\n" + sso.server_log())
            raise
        assert len(browser.authorization_urls) == 2, "a sign-in to read, a step-up to write"
        assert [c.write_box for c in browser.consents] == [False, True], browser.consents
        assert ("write", "1") in browser.consents[1].fields, browser.consents[1]
        assert "bo@acme.example" in browser.consents[1].text, browser.consents[1].text
        assert [(t.grant_type, t.status) for t in tokens] == [("authorization_code", 200)] * 2, tokens
        assert tokens[1].body.get("scope") == "mcp:read mcp:write", tokens[1]

        # Provisioned, mapped to member, signed in: on the record.
        users = sso.users()
        assert re.search(r"(?m)^bo@acme\.example\s.*acme \(member\)", users), users
        records = sso.records()
        provisioned = [r for r in records if r["event"] == "user_provisioned"]
        assert [r["user_email"] for r in provisioned] == ["bo@acme.example"], _fmt(records)
        assert provisioned[0]["detail"]["subject"] == "u-bo"
        assert provisioned[0]["detail"]["issuer"] == sso.op.issuer
        synced = [r for r in records if r["event"] == "role_synced"]
        assert [(r["org"], r["detail"]["from"], r["detail"]["to"]) for r in synced] == [
            ("acme", None, "member")], _fmt(synced)
        logins = [r for r in records if r["event"] == "sso_login"]
        assert [r["user_email"] for r in logins] == ["bo@acme.example"] * 2, _fmt(records)
        for login in logins:
            assert login["auth_method"] == "sso:corp"
            assert login["detail"]["subject"] == "u-bo"
            assert login["detail"]["orgs"] == [{"org": "acme", "role": "member", "rule": "map[0]"}]
        issued = [r for r in records if r["event"] == "token_issued"]
        assert issued and issued[-1]["user_email"] == "bo@acme.example", _fmt(records)
        assert "mcp:write" in json.dumps(issued[-1].get("detail")), _fmt(issued)
        write = [r for r in records if r["event"] == "tool_call" and r["action"] == "update_finding_status"
                 and r["outcome"] == "success" and r["user_email"] == "bo@acme.example"]
        assert write, _fmt(records[-10:])

        # ---- 2. Resync at refresh: moved to `readers`, Bo is a guest and may not write. ----
        sso.op.set_claims("u-bo", groups=["readers"])

        async def as_guest():
            async with httpx2.AsyncClient(auth=provider, timeout=HTTP_TIMEOUT,
                                          event_hooks={"response": [token_recorder(tokens)]}) as http:
                with anyio.fail_after(FLOW_TIMEOUT):
                    async with Client(streamable_http_client(sso.url, http_client=http), cache=None) as client:
                        old_access = storage.tokens.access_token
                        provider.context.token_expiry_time = time.time() - 1.0  # force a refresh
                        read = await client.call_tool("search_vendors", {"limit": 1})
                        assert not read.is_error, f"a guest may still read: {read}"
                        assert storage.tokens.access_token != old_access, "the refresh happened"
                        return await confirmed_write(client, ids[1], "as a guest, via corp")

        refused = anyio.run(as_guest)
        assert [(t.grant_type, t.status) for t in tokens[2:]] == [("refresh_token", 200)], tokens
        assert tokens[2].body.get("scope") == "mcp:read mcp:write", "the grant keeps its scopes"
        assert refused.is_error, f"a guest's write must be refused: {refused}"
        refused_text = refused.content[0].text
        assert "Confirmation required" not in refused_text and "can only read" in refused_text, refused_text
        assert len(browser.authorization_urls) == 2, "the refresh needed no new sign-in"
        assert re.search(r"(?m)^bo@acme\.example\s.*acme \(guest\)", sso.users()), sso.users()
        records = sso.records()
        synced = [r for r in records if r["event"] == "role_synced"]
        assert [(r["detail"]["from"], r["detail"]["to"], r["detail"]["rule"]) for r in synced] == [
            (None, "member", "map[0]"), ("member", "guest", "map[1]")], _fmt(synced)
        changed = [r for r in records if r["event"] == "grant_role_changed"]
        assert changed and "guest" in (changed[-1]["reason"] or ""), _fmt(records[-8:])
        denied = [r for r in records if r["event"] == "tool_call" and r["action"] == "update_finding_status"
                  and r["decision"] == "denied"]
        assert denied and denied[-1]["user_email"] == "bo@acme.example", _fmt(records[-8:])

        # ---- Out of every mapped group: the refresh is refused and the grant revoked. ----
        sso.op.set_claims("u-bo", groups=[])
        guest_access = storage.tokens.access_token

        async def removed():
            async with httpx2.AsyncClient(auth=provider, timeout=HTTP_TIMEOUT,
                                          event_hooks={"response": [token_recorder(tokens)]}) as http:
                with anyio.fail_after(FLOW_TIMEOUT):
                    provider.context.token_expiry_time = time.time() - 1.0
                    # The refresh fails, so the SDK starts a new authorization; the sign-in
                    # through the provider is then refused (no rule maps Bo any more).
                    with pytest.raises(Exception) as failed:
                        async with Client(streamable_http_client(sso.url, http_client=http), cache=None) as client:
                            await client.call_tool("search_vendors", {"limit": 1})
                    return failed.value

        err = anyio.run(removed)
        assert [(t.grant_type, t.status) for t in tokens[3:]] == [("refresh_token", 400)], \
            f"the refresh is refused and nothing is issued after it: {tokens[3:]}; {err!r}"
        assert tokens[3].body.get("error") == "invalid_grant", tokens[3]
        assert "no longer" in tokens[3].body.get("error_description", ""), tokens[3]
        assert len(browser.authorization_urls) == 3, "the client had to start over"
        assert len(browser.refusals) == 1 and browser.refusals[0].status == 403, (browser.refusals, err)
        assert "none of its mapping rules" in browser.refusals[0].text, browser.refusals[0]

        users = sso.users()
        bo_line = next(l for l in users.splitlines() if l.startswith("bo@acme.example"))
        assert bo_line.split()[3:] == ["-"], f"Bo is no longer a member anywhere: {users}"
        records = sso.records()
        synced = [r for r in records if r["event"] == "role_synced"]
        assert [(r["detail"]["from"], r["detail"]["to"]) for r in synced] == [
            (None, "member"), ("member", "guest"), ("guest", None)], _fmt(synced)
        assert "removed" in (synced[-1]["reason"] or ""), _fmt(synced[-1:])
        revoked = [r for r in records if r["event"] == "grant_revoked"]
        assert revoked and all(r["user_email"] == "bo@acme.example" and r["decision"] == "denied"
                               for r in revoked), _fmt(records[-10:])
        assert "membership.lost" in {r["rule"] for r in revoked}, _fmt(revoked)
        refusals = [r for r in records if r["event"] == "sso_refused"]
        assert [r["rule"] for r in refusals] == ["sso.unmapped"], _fmt(refusals)
        assert len([r for r in records if r["event"] == "sso_login"]) == 2, "no sign-in after the removal"

        # No access token Bo was given works any more (docs/security.md G6: "a removal revokes
        # them"): neither the refreshed grant's nor the one of the read-only grant from his
        # first consent. Authentication comes before the MCP session check, so anything but
        # 401 means the token was accepted.
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        for what, token in [("the refreshed grant's", guest_access),
                            ("the read-only grant's", tokens[0].body["access_token"])]:
            r = httpx2.post(sso.url, json=ping, timeout=HTTP_TIMEOUT,
                            headers={"Accept": "application/json, text/event-stream",
                                     "Authorization": f"Bearer {token}"})
            if r.status_code != 401:
                still = anyio.run(call_with_bearer, sso.url, token)
                raise AssertionError(
                    f"{what} access token still authenticates after the provider's mapping removed Bo "
                    f"from acme ({r.status_code} {r.text[:100]}); search_vendors with it: {still}")


async def call_with_bearer(url: str, token: str) -> str:
    """What search_vendors answers a client presenting `token` (for failure messages)."""
    try:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT) as http:
            with anyio.fail_after(30):
                async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
                    r = await client.call_tool("search_vendors", {"limit": 1})
                    return f"is_error={r.is_error} {r.content[0].text[:200]}"
    except Exception as e:  # noqa: BLE001 - only described
        return f"refused: {e!r}"[:300]


# ============================================================================================
# 3. Refusals at a real provider
# ============================================================================================
class Browser:
    """A cookie-keeping client that does not follow redirects, for Warden's pages and the
    provider's."""

    def __init__(self, sso: Sso) -> None:
        self.sso = sso
        self.http = httpx2.Client(follow_redirects=False, timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> str:
        """GET /login/sso/corp: returns the provider's authorize URL; the state cookie is kept."""
        r = self.http.get(f"{self.sso.base}/login/sso/corp", params={"continue": "/console"})
        assert r.status_code == 303, (r.status_code, r.text[:300])
        assert "warden_sso" in set_cookie_names(r), r.headers.get_list("set-cookie")
        location = r.headers["location"]
        assert location.startswith(self.sso.op.issuer + "/"), location
        return location

    def at_provider(self, authorize_url: str, email: str, password: str) -> str:
        """Signs in at the provider; returns the redirect to Warden's callback, not requested."""
        r = self.http.get(authorize_url)
        for _ in range(5):
            if not r.is_redirect:
                break
            r = self.http.get(urljoin(str(r.url), r.headers["location"]))
        assert is_provider_login_page(r), (r.status_code, r.url, r.text[:300])
        posted = provider_login(self.http, r, email, password)
        return follow_until(self.http, posted, self.sso.callback)

    def sign_in(self, email: str, password: str) -> tuple[str, httpx2.Response]:
        """The whole flow: (the callback URL, Warden's answer to it)."""
        cb = self.at_provider(self.start(), email, password)
        return cb, self.http.get(cb)

    def get(self, url: str, **kw) -> httpx2.Response:
        return self.http.get(url, **kw)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q.update(changes)
    return urlunsplit(parts._replace(query=urlencode(q)))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def assert_refused(sso: Sso, what: str, r: httpx2.Response, words: str, browser: Browser) -> None:
    body = _page_text(r.text)
    detail = f"{what}: {r.status_code} {body[:600]}\nwarden log:\n{sso.server_log(15)}"
    assert r.status_code == 403, detail
    assert "Sign-in refused" in r.text, detail
    assert words in body, f"{what}: the page should say '{words}': {detail}"
    assert "warden_session" not in set_cookie_names(r), f"{what}: a session was set: {r.headers.get_list('set-cookie')}"
    assert "warden_session" not in browser.http.cookies, f"{what}: the browser holds a session"


USERS = [
    {"sub": "u-cy", "email": "cy@acme.example", "email_verified": True, "name": "Cy",
     "groups": ["staff"], "password": "cy-pw"},
    {"sub": "u-fake-ana", "email": EMAIL, "email_verified": False, "name": "Not Ana",
     "groups": ["staff"], "password": "fake-pw"},
    {"sub": "u-dee", "email": "dee@acme.example", "email_verified": True, "name": "Dee",
     "groups": [], "password": "dee-pw"},
]


@pytest.mark.parametrize("state", state_backends())
def test_relying_party_refusals_at_a_real_provider(state):
    with sso_project(state, users=USERS) as sso:
        def refusals() -> list[dict[str, Any]]:
            return sso.records("sso_refused")

        seen = [len(refusals())]  # sso_refused records so far

        def new_refusal(rule: str, what: str) -> dict[str, Any]:
            """The one sso_refused record the last step added; it has `rule`."""
            now = refusals()
            assert len(now) == seen[0] + 1, f"{what}: expected one new sso_refused:\n{_fmt(now[seen[0]:])}"
            seen[0] = len(now)
            assert now[-1]["rule"] == rule and now[-1]["decision"] == "denied", f"{what}:\n{_fmt(now[-1:])}"
            return now[-1]

        def sign_ins() -> int:
            return len(sso.records("sso_login"))

        # ---- A state that is not this browser's. ----
        with Browser(sso) as b:
            cb = b.at_provider(b.start(), "cy@acme.example", "cy-pw")
            sent = parse_qs(urlsplit(cb).query)["state"][0]
            r = b.get(with_query(cb, state=sent[:-2] + ("AA" if not sent.endswith("AA") else "BB")))
            assert_refused(sso, "mismatched state", r, "does not match", b)
        new_refusal("sso.state", "mismatched state")

        # ---- A state replayed after a successful sign-in. ----
        with Browser(sso) as b:
            cb, ok = b.sign_in("cy@acme.example", "cy-pw")
            assert ok.status_code == 303 and ok.headers["location"] == "/console", (ok.status_code, ok.text[:300])
            assert "warden_session" in set_cookie_names(ok), ok.headers.get_list("set-cookie")
        assert sign_ins() == 1
        sent = parse_qs(urlsplit(cb).query)["state"][0]
        with Browser(sso) as replay:  # the same state cookie, put back, and no session yet
            replay.http.cookies.set("warden_sso", sent)
            r = replay.get(cb)
            assert_refused(sso, "replayed state", r, "already used", replay)
        new_refusal("sso.state", "replayed state")
        assert sign_ins() == 1, "nothing issued to the replay"

        # ---- A code issued to another client of the same provider. ----
        sso.op.set_client(client_id="other", client_secret="other-secret", redirect_uris=[sso.callback],
                          grant_types=["authorization_code", "refresh_token"])
        verifier, challenge = pkce()
        their_url = f"{sso.op.issuer}/auth?" + urlencode({
            "response_type": "code", "client_id": "other", "redirect_uri": sso.callback,
            "scope": "openid email profile groups", "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
            "code_challenge_method": "S256"})
        with Browser(sso) as thief:
            their_cb = thief.at_provider(their_url, "cy@acme.example", "cy-pw")
            code = parse_qs(urlsplit(their_cb).query)["code"][0]
            ours = thief.start()  # a flow Warden started: a valid state, with its cookie
            our_state = parse_qs(urlsplit(ours).query)["state"][0]
            r = thief.get(sso.callback, params={"code": code, "state": our_state, "iss": sso.op.issuer})
            assert_refused(sso, "another client's code", r, "refused the code", thief)
        rec = new_refusal("provider.token", "another client's code")
        assert "invalid_grant" in (rec["reason"] or ""), _fmt([rec])
        assert sign_ins() == 1
        # The control: the code was good, for its own client (a client mismatch does not
        # spend it at oidc-provider), so Warden's refusal was the provider's client check.
        theirs = httpx2.post(f"{sso.op.issuer}/token", auth=("other", "other-secret"), timeout=HTTP_TIMEOUT,
                             data={"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": sso.callback, "code_verifier": verifier})
        assert theirs.status_code == 200, (theirs.status_code, theirs.text, sso.op.log[-500:])
        assert jwt_payload(theirs.json()["id_token"])["aud"] == "other"

        # ---- An unverified e-mail that is an existing account's (ana, the admin). ----
        for attempt in ("first", "again"):  # not linked by the first: the second is refused too
            with Browser(sso) as b:
                _, r = b.sign_in(EMAIL, "fake-pw")
                assert_refused(sso, f"unverified e-mail ({attempt})", r,
                               "does not say this e-mail address is verified", b)
            rec = new_refusal("sso.unlinked_email", f"unverified e-mail ({attempt})")
            assert rec["user_email"] == EMAIL and rec["detail"]["subject"] == "u-fake-ana", _fmt([rec])
        records = sso.records()
        assert not [r for r in records if r["event"] == "identity_linked"], _fmt(records)
        assert sign_ins() == 1
        assert re.search(r"(?m)^ana@acme\.example\s.*acme \(admin\)", sso.users()), "ana's role untouched"

        # ---- Someone no mapping rule admits. ----
        with Browser(sso) as b:
            _, r = b.sign_in("dee@acme.example", "dee-pw")
            assert_refused(sso, "unmapped", r, "none of its mapping rules", b)
        new_refusal("sso.unmapped", "unmapped")
        users = sso.users()
        assert "dee@acme.example" not in users, f"no account for an unmapped person: {users}"
        assert [r["user_email"] for r in sso.records("user_provisioned")] == ["cy@acme.example"]
        assert sign_ins() == 1
