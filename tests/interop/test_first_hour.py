"""The first hour, as a newcomer lives it, with no manual step: `warden init`, then exactly the
commands it prints, then `serve`, then the official MCP Python SDK over HTTP and over stdio with
the key those commands printed: a read, a write previewed and confirmed, and the refusals a
desktop client shows when its key is missing."""

import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from warden_fixtures import WARDEN, server


def run_printed(line):
    """Runs one printed `warden ...` line as a person would paste it; returns its stdout."""
    args = shlex.split(line)
    assert args[0] == "warden", line
    out = subprocess.run([WARDEN, *args[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         env={**os.environ, "WARDEN_LOG": "warn"})
    assert out.returncode == 0, f"{line}\n{out.stderr}"
    return out.stdout.strip()


@pytest.fixture(scope="module")
def first_hour():
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "vendor-risk"
        out = subprocess.run([WARDEN, "init", str(target)], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stderr
        assert "Nobody can connect yet" in out.stdout, out.stdout
        steps = [l.strip() for l in out.stdout.splitlines() if l.startswith("  warden ")]
        assert steps[-1].startswith("warden serve -p "), out.stdout
        printed = {}
        for line in steps[:-1]:
            printed[shlex.split(line)[1:3][0]] = run_printed(line)
        key = printed["key"]
        assert key.startswith("wdn_key_"), printed
        serve = shlex.split(steps[-1])
        file = Path(serve[serve.index("-p") + 1])
        assert file.exists(), file
        with server(file) as url:
            yield file, key, url


def test_http_read_then_confirmed_write(first_hour):
    _, key, url = first_hour

    async def main():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                found = await client.call_tool("list_findings", {"status": "open", "limit": 1})
                assert not found.is_error, found
                finding = json.loads(found.content[0].text)["rows"][0]
                args = {"finding_id": finding["id"], "status": "in_progress", "note": "first hour"}
                preview = await client.call_tool("update_finding_status", args)
                # A preview changes nothing and is not a success: the model must ask the person.
                text = preview.content[0].text
                assert preview.is_error and text.startswith("Confirmation required"), preview
                token = re.search(r"wdn_cf_[A-Za-z0-9_-]+", text).group(0)
                done = await client.call_tool("update_finding_status",
                                              {**args, "confirm": True, "confirmation_token": token})
                assert not done.is_error, done
                after = await client.call_tool("list_findings", {"status": "in_progress", "limit": 200})
                assert finding["id"] in {r["id"] for r in json.loads(after.content[0].text)["rows"]}

    anyio.run(main)


def test_stdio_with_the_printed_key(first_hour):
    file, key, _ = first_hour
    params = StdioServerParameters(command=WARDEN, args=["serve", "--stdio", "-p", str(file)],
                                   env={**os.environ, "WARDEN_LOG": "warn", "WARDEN_API_KEY": key})

    async def main():
        async with Client(params) as client:
            report = await client.call_tool("portfolio_report", {})
            assert not report.is_error
            assert json.loads(report.content[0].text)["rows"]

    anyio.run(main)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_stdio_tells_the_client_why_it_cannot_start(first_hour, mode):
    """A desktop client hides stderr: the reason must come back as the answer to its first request."""
    file, _, _ = first_hour
    env = {k: v for k, v in os.environ.items() if k != "WARDEN_API_KEY"}
    params = StdioServerParameters(command=WARDEN, args=["serve", "--stdio", "-p", str(file)],
                                   env={**env, "WARDEN_LOG": "warn"})

    async def main():
        with pytest.raises(Exception) as refused:
            async with Client(params, mode=mode) as client:
                await client.list_tools()
        text = repr(refused.value) + str(getattr(refused.value, "exceptions", ""))
        assert "WARDEN_API_KEY" in text, text

    anyio.run(main)
