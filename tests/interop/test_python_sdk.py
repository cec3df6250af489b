"""Interop: the official MCP Python SDK (PyPI `mcp`, pinned in tests/run) against a real
`warden` binary, over Streamable HTTP and over stdio.

`mcp.Client` in its default mode first probes protocol 2026-07-28 (`server/discover`) and
falls back to the `initialize` handshake; the tests run it that way and also with the
handshake forced, so Warden must work either way."""

import json
import os

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from warden_fixtures import WARDEN, project, server

EXPECTED_TOOLS = {
    "search_vendors",
    "vendor_detail",
    "list_findings",
    "portfolio_report",
    "upcoming_obligations",
    "update_finding_status",
}


@pytest.fixture(scope="module")
def demo():
    with project() as (file, key):
        with server(file) as url:
            yield file, key, url


async def exercise(client: Client):
    assert client.server_info is not None and client.server_info.name == "warden"
    assert client.protocol_version in ("2025-11-25", "2025-06-18", "2026-07-28")

    tools = (await client.list_tools()).tools
    # The hand-written tools, and those the example's `tables:` generate (test_tables.py).
    assert EXPECTED_TOOLS <= {t.name for t in tools}
    assert {"list_vendors", "get_vendors", "insert_obligations"} <= {t.name for t in tools}
    by_name = {t.name: t for t in tools}
    assert by_name["search_vendors"].annotations.read_only_hint is True
    assert by_name["update_finding_status"].annotations.destructive_hint is True
    assert by_name["vendor_detail"].input_schema["required"] == ["vendor_id"]

    found = await client.call_tool("search_vendors", {"tier": "critical", "limit": 3})
    assert not found.is_error
    rows = json.loads(found.content[0].text)["rows"]
    assert 1 <= len(rows) <= 3 and all(r["tier"] == "critical" for r in rows)

    detail = await client.call_tool("vendor_detail", {"vendor_id": rows[0]["id"]})
    assert not detail.is_error
    # vendor_detail declares an output schema, so the result is structured too.
    assert detail.structured_content["id"] == rows[0]["id"]
    assert isinstance(detail.structured_content["open_findings"], int)

    bad = await client.call_tool("vendor_detail", {"vendor_id": "nope"})
    assert bad.is_error is True
    assert "parameter 'vendor_id'" in bad.content[0].text

    report = await client.call_tool("portfolio_report", {})
    tiers = [r["tier"] for r in json.loads(report.content[0].text)["rows"]]
    assert tiers[0] == "critical"

    resource = await client.read_resource(f"vendor://{rows[0]['id']}")
    assert json.loads(resource.contents[0].text)["id"] == rows[0]["id"]

    prompt = await client.get_prompt("vendor_review", {"vendor_id": "V-001", "focus": "privacy"})
    text = prompt.messages[0].content.text
    assert "V-001" in text and "privacy" in text
    return client.protocol_version


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_http_lists_and_calls_tools(demo, mode):
    _, key, url = demo

    async def main():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                return await exercise(client)

    version = anyio.run(main)
    print(f"HTTP mode={mode}: negotiated {version}")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_stdio_lists_and_calls_tools(demo, mode):
    file, key, _ = demo
    params = StdioServerParameters(
        command=WARDEN,
        args=["serve", "--stdio", "-p", str(file)],
        env={**os.environ, "WARDEN_LOG": "warn", "WARDEN_API_KEY": key},
    )

    async def main():
        async with Client(params, mode=mode) as client:
            return await exercise(client)

    version = anyio.run(main)
    print(f"stdio mode={mode}: negotiated {version}")


def test_http_without_a_bearer_is_refused(demo):
    _, _, url = demo

    async def main():
        async with httpx2.AsyncClient(timeout=30) as http:
            r = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                headers={"Accept": "application/json, text/event-stream"})
            assert r.status_code == 401
            assert 'resource_metadata="' in r.headers["www-authenticate"]

    anyio.run(main)


def test_stdio_without_a_key_is_refused(demo):
    file, _, _ = demo
    import subprocess

    out = subprocess.run([WARDEN, "serve", "--stdio", "-p", str(file)], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "WARDEN_API_KEY"}, input="")
    assert out.returncode == 1
    assert "WARDEN_API_KEY" in out.stderr


def test_stdio_rechecks_the_key_on_every_request(demo):
    """A key revoked while a stdio session is open stops the session's next request."""
    from warden_fixtures import EMAIL, warden

    file, _, _ = demo
    f = str(file)
    key = warden("key", "create", "--org", "acme", "--user", EMAIL, "--name", "stdio-revoke", "-p", f)
    key_id = next(line.split()[0] for line in warden("key", "list", "--org", "acme", "-p", f).splitlines() if "stdio-revoke" in line)
    params = StdioServerParameters(
        command=WARDEN,
        args=["serve", "--stdio", "-p", f],
        env={**os.environ, "WARDEN_LOG": "warn", "WARDEN_API_KEY": key},
    )

    async def main():
        async with Client(params, mode="legacy") as client:
            assert not (await client.call_tool("portfolio_report", {})).is_error
            warden("key", "revoke", key_id, "--org", "acme", "-p", f)
            with pytest.raises(Exception) as refused:
                await client.call_tool("portfolio_report", {})
            assert "no longer grants access" in str(refused.value)

    anyio.run(main)


def test_sensitive_fields_never_reach_a_caller_whose_policy_removes_them(demo):
    """vendor_detail marks annual_spend sensitive; only Admins see it (example policies)."""
    from warden_fixtures import warden

    file, admin_key, url = demo
    f = str(file)
    warden("user", "add", "gus@acme.example", "--org", "acme", "--role", "guest", "-p", f)
    guest_key = warden("key", "create", "--org", "acme", "--user", "gus@acme.example", "--name", "guest", "-p", f)

    async def detail(key):
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                return await client.call_tool("vendor_detail", {"vendor_id": "V-001"})

    guest = anyio.run(detail, guest_key)
    assert not guest.is_error
    assert "annual_spend" not in guest.content[0].text
    assert "annual_spend" not in guest.structured_content
    assert guest.structured_content["owner_email"] == "****"
    admin = anyio.run(detail, admin_key)
    assert isinstance(admin.structured_content["annual_spend"], int)
