"""Client ID Metadata Documents (CIMD) end to end with the official MCP SDKs: the app names
itself with an https URL instead of registering, and Warden fetches the JSON document served
there to learn its redirect URIs.

The document is served on loopback over HTTPS (a CA made here, a leaf for `cimd.test`), and a
debug build of Warden is pointed at it with its test hooks (crates/warden/src/test_hooks.rs):
WARDEN_TEST_CIMD_RESOLVE pins `cimd.test` to 127.0.0.1 (no other name resolves, so nothing
leaves the host) and WARDEN_TEST_CIMD_CA trusts the test CA. The SDKs never fetch the document
themselves, so they need neither.

- The Python SDK (`mcp`), in mode "auto" (2026-07-28) and "legacy" (2025-11-25): sign-in and
  consent played headless, tool calls, one refresh.
- The TypeScript SDK v2 (`legacy` and `auto`) and v1 (2025-11-25), through
  ts_oauth_client.mjs with CIMD_URL set.
- Refusals: an IP-literal URL, and a name the hook does not resolve.

Both SDKs fall back to dynamic registration silently when CIMD is not taken, so every test
checks that nothing was registered, that the client_id is the document's URL, and that Warden
fetched the document (its user agent starts "warden/"). Runs with Warden's state on SQLite and,
when WARDEN_TEST_POSTGRES_URL is set, on PostgreSQL. Needs a debug `warden` (tests/run builds
one); the TypeScript half needs NODE22 and NODE_MODULES, as test_balancer.py."""

from __future__ import annotations

import html
import json
import os
import re
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from test_oauth import REDIRECT_URI, HeadlessBrowser, InMemoryTokenStorage
from test_tls import make_ca_and_leaf
from warden_fixtures import EMAIL, PASSWORD, project, server, state_backends

CIMD_HOST = "cimd.test"  # the only name WARDEN_TEST_CIMD_RESOLVE lets Warden resolve
TS_REDIRECT_URI = "http://127.0.0.1:33419/callback"  # ts_oauth_client.mjs's REDIRECT_URI
TS_CLIENT = Path(__file__).with_name("ts_oauth_client.mjs")
PROTOCOL = {"auto": "2026-07-28", "legacy": "2025-11-25"}


# --------------------------------------------------------------------------------------------
# The app's metadata document, served on loopback over HTTPS, and Warden pointed at it
# --------------------------------------------------------------------------------------------
@dataclass
class Document:
    url: str  # https://cimd.test:PORT/client.json: the client_id
    port: int
    ca: Path
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent) per GET

    def at(self, host: str) -> str:
        """The document's URL under another host name (same port and path)."""
        return f"https://{host}:{self.port}/client.json"

    def assert_fetched_by_warden(self) -> None:
        assert self.hits, "nobody fetched the metadata document: the SDK did not use CIMD"
        assert all(p == "/client.json" and ua.startswith("warden/") for p, ua in self.hits), self.hits


@contextmanager
def metadata_document(tmp: Path) -> Iterator[Document]:
    """Serves the app's metadata document at https://cimd.test:PORT/client.json (on
    127.0.0.1), listing both SDK scripts' redirect URIs; records every request."""
    ca, cert, key = make_ca_and_leaf(tmp, dns_names=[CIMD_HOST])
    body: dict[str, object] = {}
    hits: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append((self.path, self.headers.get("User-Agent", "")))
            if self.path != "/client.json":
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=60")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    doc = Document(url=f"https://{CIMD_HOST}:{port}/client.json", port=port, ca=ca, hits=hits)
    body.update(
        client_id=doc.url,
        client_name="Warden CIMD interop",
        redirect_uris=[REDIRECT_URI, TS_REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
        application_type="native",
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield doc
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def warden_for(doc: Document, state: str) -> Iterator[tuple[str, list[str]]]:
    """A fresh project and `warden serve` with the CIMD test hooks aimed at `doc`: yields (MCP
    URL, Warden's log so far)."""
    log: list[str] = []
    hooks = {"WARDEN_TEST_CIMD_RESOLVE": f"{CIMD_HOST}=127.0.0.1", "WARDEN_TEST_CIMD_CA": str(doc.ca)}
    with project(state) as (file, _key), server(file, env=hooks, log=log) as url:
        assert any("TEST HOOK" in line for line in log), "the CIMD test hooks are off (a release build?):\n" + "\n".join(log)
        yield url, log


def logged(log: list[str]) -> str:
    return "\nWarden's log:\n" + "\n".join(log[-40:])


# --------------------------------------------------------------------------------------------
# The Python SDK's OAuth client with a client_metadata_url
# --------------------------------------------------------------------------------------------
def python_provider(url: str, client_metadata_url: str, storage, browser) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=url,
        # Still required under CIMD: the SDK takes redirect_uris[0] and the grant types from it.
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=client_metadata_url,
    )


@pytest.mark.parametrize("state", state_backends())
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_sdk_signs_in_with_a_client_id_metadata_document(tmp_path, state, mode):
    """The Python SDK given `client_metadata_url` connects without registering: its client_id
    at /authorize and in its storage is the document's URL, Warden fetched the document (and
    accepted its redirect URI), the person signed in and consented once, tools answer, and a
    refresh with the URL client_id works. Mode "auto" negotiates 2026-07-28, "legacy"
    2025-11-25."""
    with metadata_document(tmp_path) as doc, warden_for(doc, state) as (url, log):
        storage = InMemoryTokenStorage()
        browser = HeadlessBrowser(EMAIL, PASSWORD, allow_write=False)
        provider = python_provider(url, doc.url, storage, browser)
        trace: list[str] = []

        async def on_request(request: httpx2.Request) -> None:
            trace.append(f"{request.method} {request.url.path}")

        async def main():
            async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [on_request]}) as http:
                with anyio.fail_after(60):
                    async with Client(streamable_http_client(url, http_client=http), mode=mode, cache=None) as client:
                        found = await client.call_tool("search_vendors", {"limit": 2})
                        assert not found.is_error, found
                        assert len(json.loads(found.content[0].text)["rows"]) == 2
                        first_access = storage.tokens.access_token
                        provider.context.token_expiry_time = time.time() - 1.0  # force a refresh
                        again = await client.call_tool("portfolio_report", {})
                        assert not again.is_error, again
                        assert storage.tokens.access_token != first_access, "the refresh issued no new token"
                        return client.protocol_version

        try:
            protocol = anyio.run(main)
        except Exception as e:
            raise AssertionError(f"{e!r}; requests: {trace}{logged(log)}") from e

        assert protocol == PROTOCOL[mode]
        assert "POST /register" not in trace, f"the SDK registered instead of using CIMD: {trace}"
        assert trace.count("POST /token") == 2, trace  # the code, then the refresh
        assert storage.client_info.client_id == doc.url
        assert len(browser.authorization_urls) == 1
        assert parse_qs(urlsplit(browser.authorization_urls[0]).query)["client_id"] == [doc.url]
        doc.assert_fetched_by_warden()


# --------------------------------------------------------------------------------------------
# The TypeScript SDKs (tests/interop/ts_oauth_client.mjs) with CIMD_URL
# --------------------------------------------------------------------------------------------
def node_tools() -> tuple[str, str]:
    # A missing Node is a broken setup, never a reason to skip.
    node, modules = os.environ.get("NODE22"), os.environ.get("NODE_MODULES")
    if not node or not modules:
        pytest.fail("NODE22 and NODE_MODULES are not set: the TypeScript SDK half needs the pinned Node 22 "
                    "and the test tools' node_modules (tests/run interop sets both via node_tools)")
    assert os.access(node, os.X_OK), f"NODE22={node} is not an executable"
    return node, modules


TS_LINES = {
    "v2-legacy": ({"VERSION_NEGOTIATION": "legacy"}, "@modelcontextprotocol/client", "2.4.0", "2025-11-25"),
    "v2-auto": ({"VERSION_NEGOTIATION": "auto"}, "@modelcontextprotocol/client", "2.4.0", "2026-07-28"),
    "v1": ({"SDK_LINE": "v1"}, "@modelcontextprotocol/sdk", "1.32.2", "2025-11-25"),
}


@pytest.mark.parametrize("state", state_backends())
@pytest.mark.parametrize("line", list(TS_LINES))
def test_typescript_sdk_signs_in_with_a_client_id_metadata_document(tmp_path, state, line):
    """The TypeScript SDK (v2 in `legacy` and `auto` negotiation, and v1) with
    `clientMetadataUrl` set connects without registering: the client_id it used at /authorize
    and saved is the document's URL, Warden fetched the document, the person signed in once,
    nine tool calls answer, and the protocol version is the one the mode asks for."""
    node, modules = node_tools()
    options, sdk, version, protocol = TS_LINES[line]
    with metadata_document(tmp_path) as doc, warden_for(doc, state) as (url, log):
        out = subprocess.run(
            [node, str(TS_CLIENT), url, EMAIL, PASSWORD],
            capture_output=True, text=True, timeout=180,
            env={**os.environ, "NODE_PATH": modules, "CIMD_URL": doc.url, **options},
        )
        assert out.returncode == 0, f"ts_oauth_client.mjs exited {out.returncode}:\n{out.stderr}\n{out.stdout}{logged(log)}"
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert (summary["sdk"], summary["version"]) == (sdk, version), summary
        assert summary["registered"] is False, f"the SDK registered instead of using CIMD: {summary}"
        assert summary["client_id"] == doc.url and summary["authorize_client_id"] == doc.url, summary
        assert summary["protocol_version"] == protocol, summary
        assert summary["calls"] == 9 and summary["authorizations"] == 1, summary
        assert summary["scope"] == "mcp:read", summary
        doc.assert_fetched_by_warden()


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------
class RefusedAuthorization:
    """The browser for a request Warden must refuse: keeps /authorize's answer, then fails
    the SDK's flow."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.status: int | None = None
        self.page = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        self.urls.append(authorization_url)

    async def callback_handler(self):
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            r = await http.get(self.urls[-1])
        self.status = r.status_code
        self.page = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", r.text)))
        raise OAuthFlowError(f"/authorize answered {r.status_code}")


@pytest.mark.parametrize("state", state_backends())
def test_a_document_url_warden_must_not_fetch_is_refused(tmp_path, state):
    """Both SDKs accept any https URL with a path, so Warden is the one to refuse: an IP
    literal (https://127.0.0.1:PORT/client.json) is refused before any fetch, saying a
    client_id URL must name a host; a name WARDEN_TEST_CIMD_RESOLVE does not list
    (unlisted.test) does not resolve, so nothing is fetched and the page says why. Each is a
    400 page at /authorize, not a redirect to the app, and nothing is registered."""
    cases = {
        "127.0.0.1": "a client_id URL must name a host, not an IP address",
        "unlisted.test": "unlisted.test is not named in WARDEN_TEST_CIMD_RESOLVE",
    }
    with metadata_document(tmp_path) as doc, warden_for(doc, state) as (url, log):
        for host, reason in cases.items():
            browser = RefusedAuthorization()
            provider = python_provider(url, doc.at(host), InMemoryTokenStorage(), browser)
            trace: list[str] = []

            async def on_request(request: httpx2.Request) -> None:
                trace.append(f"{request.method} {request.url.path}")

            async def main():
                async with httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [on_request]}) as http:
                    with anyio.fail_after(60):
                        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
                            await client.list_tools()

            with pytest.raises(Exception):
                anyio.run(main)
            assert len(browser.urls) == 1, f"{host}: the SDK never went to /authorize: {trace}"
            assert parse_qs(urlsplit(browser.urls[0]).query)["client_id"] == [doc.at(host)]
            assert browser.status == 400, f"{host}: /authorize answered {browser.status}: {browser.page[:600]}{logged(log)}"
            assert reason in browser.page, f"{host}: the page does not say '{reason}': {browser.page[:600]}{logged(log)}"
            assert "POST /register" not in trace, trace
        assert doc.hits == [], f"Warden fetched the document for a refused URL: {doc.hits}"
