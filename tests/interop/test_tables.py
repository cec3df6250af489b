"""Interop: tables served as tools (`tables:` in the example project), through the official
MCP Python SDK, with the example data on SQLite and on PostgreSQL. Every generated verb is
listed and called, and its results compared with the same query written by hand as an
ordinary tool; writes go through the preview and the confirmation."""

import json
import re
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from warden_fixtures import _members, server, state_backends, warden

BY_HAND = """
  - name: hand_list_vendors
    description: list_vendors by hand
    access: read
    params:
      - { name: limit, type: integer, default: 20 }
    sql: |
      SELECT id, name, category, tier, status, country, data_access, annual_spend, contract_end, risk_score
      FROM vendors ORDER BY id LIMIT :limit
  - name: hand_vendor
    description: get_vendors by hand
    access: read
    returns: row
    params:
      - { name: id, type: string, required: true }
    sql: |
      SELECT id, name, category, tier, status, country, data_access, annual_spend, contract_end, risk_score
      FROM vendors WHERE id = :id
  - name: hand_sql
    description: one fixed query per name, by hand
    access: read
    params:
      - { name: which, type: string, required: true }
    sql: |
      SELECT 'tiers' AS q, tier AS value, COUNT(*) AS count FROM vendors WHERE :which = 'tiers' GROUP BY tier
      UNION ALL
      SELECT 'severities', severity, COUNT(*) FROM findings WHERE :which = 'severities' GROUP BY severity
      ORDER BY 3 DESC, 2
"""


@contextmanager
def example(data):
    """The example project with its data on `data` (sqlite or postgres); yields (file, key)."""
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "p"
        if data == "postgres":
            import os

            admin = os.environ["WARDEN_TEST_POSTGRES_URL"]
            name = f"warden_tables_{uuid.uuid4().hex[:10]}"
            subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
            url = admin.rsplit("/", 1)[0] + "/" + name
            try:
                warden("init", str(target), "--postgres", url)
                yield _ready(target)
            finally:
                subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
        else:
            warden("init", str(target))
            yield _ready(target)


def _ready(target):
    file = target / "warden.yaml"
    file.write_text(file.read_text().replace("\ntools:\n", "\ntools:" + BY_HAND))
    warden("check", "-p", str(file))
    return file, _members(file)


def rows(result):
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


async def confirmed(client, tool, args):
    preview = await client.call_tool(tool, args)
    text = preview.content[0].text
    assert preview.is_error and text.startswith("Confirmation required"), text
    token = re.search(r"wdn_cf_[A-Za-z0-9_-]+", text).group(0)
    return text, await client.call_tool(tool, {**args, "confirm": True, "confirmation_token": token})


GENERATED = {
    "list_vendors", "get_vendors", "filter_vendors", "count_vendors_by", "export_vendors",
    "assessments_of_vendors", "findings_of_vendors", "obligations_of_vendors",
    "list_assessments", "get_assessments", "filter_assessments",
    "get_findings", "search_findings", "filter_findings", "count_findings_by",
    "list_obligations", "filter_obligations", "insert_obligations", "update_obligations", "delete_obligations",
}


async def every_verb(client):
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert GENERATED <= set(tools), GENERATED - set(tools)
    assert tools["list_vendors"].annotations.read_only_hint is True
    assert tools["delete_obligations"].annotations.destructive_hint is True
    assert tools["get_vendors"].input_schema["required"] == ["id"]
    assert tools["filter_vendors"].input_schema["properties"]["tier_in"]["items"] == {"type": "string"}
    assert "owner_email" not in tools["filter_vendors"].input_schema["properties"]

    # list, page by page, equals the query by hand
    by_hand = rows(await client.call_tool("hand_list_vendors", {"limit": 80}))["rows"]
    got, cursor = [], None
    while True:
        args = {"limit": 30} | ({"cursor": cursor} if cursor else {})
        page = rows(await client.call_tool("list_vendors", args))
        got += page["rows"]
        cursor = page.get("next_cursor")
        if not cursor:
            assert page["truncated"] is False
            break
    assert got == by_hand

    # get
    assert rows(await client.call_tool("get_vendors", {"id": "V-012"})) == rows(await client.call_tool("hand_vendor", {"id": "V-012"}))
    assert (await client.call_tool("get_vendors", {"id": "V-999"})).is_error

    # filter, count, related, search
    crit = rows(await client.call_tool("filter_vendors", {"tier": "critical", "limit": 200}))["rows"]
    assert crit == [v for v in by_hand if v["tier"] == "critical"]
    ranged = rows(await client.call_tool("filter_vendors", {"risk_score_min": 30, "risk_score_max": 60, "contract_end_max": "2026-12-31", "limit": 200}))["rows"]
    assert ranged == [v for v in by_hand if 30 <= v["risk_score"] <= 60 and v["contract_end"] <= "2026-12-31"]
    tiers = rows(await client.call_tool("count_vendors_by", {"column": "tier"}))["rows"]
    assert tiers == [{"value": r["value"], "count": r["count"]} for r in rows(await client.call_tool("hand_sql", {"which": "tiers"}))["rows"]]
    sev = rows(await client.call_tool("count_findings_by", {"column": "severity"}))["rows"]
    assert sev == [{"value": r["value"], "count": r["count"]} for r in rows(await client.call_tool("hand_sql", {"which": "severities"}))["rows"]]
    findings = rows(await client.call_tool("findings_of_vendors", {"vendor_id": "V-003", "limit": 200}))["rows"]
    assert findings and all(f["vendor_id"] == "V-003" for f in findings)
    assert findings == rows(await client.call_tool("filter_findings", {"vendor_id": "V-003", "limit": 200}))["rows"]
    for tool in ("assessments_of_vendors", "obligations_of_vendors"):
        assert all(r["vendor_id"] == "V-003" for r in rows(await client.call_tool(tool, {"vendor_id": "V-003"}))["rows"])
    one = rows(await client.call_tool("get_findings", {"id": findings[0]["id"]}))
    assert one == findings[0]
    word = findings[0]["title"].split()[0]
    hits = rows(await client.call_tool("search_findings", {"query": word.upper(), "limit": 200}))["rows"]
    assert findings[0] in hits and all(word.lower() in (h["title"] + (h["note"] or "")).lower() for h in hits)
    assert rows(await client.call_tool("search_findings", {"query": "%"}))["row_count"] == 0
    assert rows(await client.call_tool("list_assessments", {"limit": 3}))["row_count"] == 3
    a = rows(await client.call_tool("filter_assessments", {"rating": "fail", "limit": 1}))["rows"][0]
    assert rows(await client.call_tool("get_assessments", {"id": a["id"]})) == a
    assert rows(await client.call_tool("list_obligations", {"limit": 5}))["row_count"] == 5

    # export: the same rows as filter, in a file behind a signed URL
    exported = rows(await client.call_tool("export_vendors", {"tier": "critical"}))
    assert exported["rows"] == len(crit) and exported["truncated"] is False
    assert "/files/" in exported["url"] and len(exported["sha256"]) == 64

    # insert, update, delete: previewed, confirmed, and seen by the reads
    new = {"id": 7001, "vendor_id": "V-004", "framework": "SOC 2", "requirement": "Annual report", "due_on": "2027-03-01", "status": "pending"}
    _, done = await confirmed(client, "insert_obligations", new)
    assert not done.is_error, done.content[0].text
    assert rows(await client.call_tool("filter_obligations", {"id": 7001}))["rows"] == [new]
    preview, done = await confirmed(client, "update_obligations", {"id": 7001, "status": "met"})
    assert "now they read" in preview and '"status":"pending"' in preview and '"status":"met"' in preview, preview
    assert not done.is_error
    assert rows(await client.call_tool("filter_obligations", {"id": 7001}))["rows"][0]["status"] == "met"
    _, done = await confirmed(client, "delete_obligations", {"id": 7001})
    assert not done.is_error
    assert rows(await client.call_tool("filter_obligations", {"id": 7001}))["row_count"] == 0


@pytest.mark.parametrize("data", state_backends())
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_every_generated_verb(data, mode):
    with example(data) as (file, key):
        with server(file) as url:

            async def main():
                async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                        await every_verb(client)

            anyio.run(main)
