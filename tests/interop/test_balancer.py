"""Three Warden instances on one PostgreSQL behind HAProxy (round-robin, not sticky): the
official MCP Python SDK completes OAuth and calls tools in both protocol modes, with
consecutive requests served by different instances; so does the official TypeScript SDK v2
(`@modelcontextprotocol/client`, in tests/interop/ts_oauth_client.mjs, run with the pinned Node
22 from NODE22 and NODE_MODULES, which tests/run sets); and a revoked key, a demoted member and
a removed member are refused on the very next request, whichever instance serves it. Needs
WARDEN_TEST_POSTGRES_URL (CI sets it); without it, this says it did not run."""

import json
import os
import subprocess
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cluster import cluster
from test_oauth import HeadlessBrowser, InMemoryTokenStorage, build_provider
from warden_fixtures import EMAIL, PASSWORD, WARDEN

ADMIN_URL = os.environ.get("WARDEN_TEST_POSTGRES_URL")
TS_CLIENT = Path(__file__).with_name("ts_oauth_client.mjs")


@pytest.fixture(scope="module")
def lb():
    if not ADMIN_URL:
        print("PostgreSQL half NOT run: set WARDEN_TEST_POSTGRES_URL (several instances need a shared PostgreSQL)")
        yield None
        return
    with cluster(ADMIN_URL) as c:
        yield c


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_python_sdk_oauth_and_calls_land_on_every_instance(lb, mode):
    if lb is None:
        return
    before = [i.operations() for i in lb.instances]
    storage = InMemoryTokenStorage()
    browser = HeadlessBrowser(EMAIL, PASSWORD, allow_write=False)
    provider = build_provider(lb.url, storage, browser)

    async def main():
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            with anyio.fail_after(90):
                async with Client(streamable_http_client(lb.url, http_client=http), mode=mode, cache=None) as client:
                    assert "search_vendors" in {t.name for t in (await client.list_tools()).tools}
                    for i in range(9):
                        found = await client.call_tool("search_vendors", {"limit": 2})
                        assert not found.is_error, found
                        assert len(json.loads(found.content[0].text)["rows"]) == 2

    anyio.run(main)
    assert storage.tokens.scope == "mcp:read"
    served = [i.operations() - b for i, b in zip(lb.instances, before)]
    assert sum(served) == 9, served
    assert sum(1 for s in served if s > 0) >= 2, f"round-robin should spread the calls: {served}"
    print(f"mode={mode}: tools/call per instance {served}")


def test_typescript_sdk_oauth_and_calls_land_on_every_instance(lb):
    # Checked first: a missing Node is a broken setup, never a reason to skip.
    node, modules = os.environ.get("NODE22"), os.environ.get("NODE_MODULES")
    if not node or not modules:
        pytest.fail("NODE22 and NODE_MODULES are not set: the TypeScript SDK half needs the pinned Node 22 "
                    "and the test tools' node_modules (tests/run interop sets both via node_tools)")
    assert os.access(node, os.X_OK), f"NODE22={node} is not an executable"
    assert os.path.isdir(os.path.join(modules, "@modelcontextprotocol", "client")), \
        f"NODE_MODULES={modules} has no @modelcontextprotocol/client"
    if lb is None:
        return
    before = [i.operations() for i in lb.instances]
    out = subprocess.run(
        [node, str(TS_CLIENT), lb.url, EMAIL, PASSWORD],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "NODE_PATH": modules},
    )
    assert out.returncode == 0, f"ts_oauth_client.mjs exited {out.returncode}:\n{out.stderr}\n{out.stdout}"
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got: {out.stdout!r} (stderr: {out.stderr})"
    summary = json.loads(lines[0])
    assert summary["calls"] == 9, summary
    assert summary["scope"] == "mcp:read", summary
    assert summary["sdk"] == "@modelcontextprotocol/client" and summary["version"] == "2.4.0", summary
    assert summary["iss"] == lb.url.removesuffix("/mcp"), summary
    assert summary["authorizations"] == 1, summary
    served = [i.operations() - b for i, b in zip(lb.instances, before)]
    assert sum(served) == 9, served
    assert sum(1 for s in served if s > 0) >= 2, f"round-robin should spread the calls: {served}"
    print(f"typescript v2: tools/call per instance {served}; {summary}")


def _post(http, url, key, body, session=None):
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25"}
    return http.post(url, headers=headers, json=body)


def _call(http, url, key, tool, args):
    r = _post(http, url, key, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": args}})
    if r.status_code != 200:
        return r.status_code, None
    text = r.text
    if text.lstrip().startswith("{"):
        return 200, json.loads(text)
    data = [l[5:].strip() for l in text.splitlines() if l.startswith("data:") and l[5:].strip()]
    return 200, json.loads(data[-1])


def test_revocation_demotion_and_removal_apply_on_the_next_request_at_every_instance(lb):
    if lb is None:
        return
    lb.cli("user", "add", "kim@acme.example", "--org", "acme", "--role", "member")
    key = lb.cli("key", "add", "--org", "acme", "--user", "kim@acme.example", "--name", "kim", "--scope", "mcp:read mcp:write")
    write = {"finding_id": 3, "status": "in_progress", "note": "balancer"}
    with httpx2.Client(timeout=30) as http:
        # Stateless: no initialize needed; each request stands alone. A member may write:
        # the call answers with a preview on every instance.
        for _ in range(3):
            status, r = _call(http, lb.url, key, "update_finding_status", write)
            assert status == 200 and r["result"]["content"][0]["text"].startswith("Confirmation required"), r
        lb.cli("member", "set-role", "kim@acme.example", "--role", "guest", "--org", "acme")
        for _ in range(3):
            status, r = _call(http, lb.url, key, "update_finding_status", write)
            assert status == 200 and r["result"]["isError"] is True, r
            assert "Confirmation required" not in r["result"]["content"][0]["text"], r
        lb.cli("member", "set-role", "kim@acme.example", "--role", "member", "--org", "acme")
        key_id = next(l.split()[0] for l in lb.cli("key", "list", "--org", "acme").splitlines() if " kim " in f" {l} ")
        lb.cli("key", "revoke", key_id, "--org", "acme")
        for _ in range(3):
            assert _call(http, lb.url, key, "search_vendors", {"limit": 1})[0] == 401
        other = lb.cli("key", "add", "--org", "acme", "--user", "kim@acme.example", "--name", "kim2")
        assert _call(http, lb.url, other, "search_vendors", {"limit": 1})[0] == 200
        lb.cli("member", "remove", "kim@acme.example", "--org", "acme")
        for _ in range(3):
            assert _call(http, lb.url, other, "search_vendors", {"limit": 1})[0] == 401


def test_kill_9_during_a_write_load_loses_nothing_acknowledged(lb):
    """64 sessions write through the balancer; one instance is killed with SIGKILL mid-load.
    Every call a client saw answered has its record (found by the trace id the client sent),
    the trail verifies, the clients' next calls succeed through the other instances, and the
    killed instance, restarted, serves again."""
    if lb is None:
        return
    import secrets
    import time

    acknowledged = []  # trace ids of calls answered 200 with a result
    failures = []
    stop_at = time.monotonic() + 6.0

    async def session(n):
        async with httpx2.AsyncClient(timeout=20) as http:
            i = 0
            while time.monotonic() < stop_at:
                trace = secrets.token_hex(16)
                i += 1
                headers = {"Authorization": f"Bearer {lb.key}", "Accept": "application/json, text/event-stream",
                           "Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25",
                           "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}
                body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
                    "name": "update_finding_status",
                    "arguments": {"finding_id": 1 + (n % 20), "status": "in_progress", "note": f"load {n}.{i}"}}}
                try:
                    r = await http.post(lb.url, headers=headers, json=body)
                except httpx2.HTTPError as e:
                    failures.append(type(e).__name__)
                    continue
                if r.status_code == 200 and '"result"' in r.text:
                    acknowledged.append(trace)
                else:
                    failures.append(r.status_code)

    async def load():
        async with anyio.create_task_group() as tg:
            for n in range(64):
                tg.start_soon(session, n)
            await anyio.sleep(2.0)
            lb.instances[1].proc.kill()  # SIGKILL: no shutdown code runs

    anyio.run(load)
    lb.instances[1].proc.wait(timeout=10)
    assert len(acknowledged) > 100, (len(acknowledged), failures[:10])

    # The next calls go through the other instances.
    with httpx2.Client(timeout=20) as http:
        for _ in range(6):
            status, r = _call(http, lb.url, lb.key, "search_vendors", {"limit": 1})
            assert status == 200 and not r["result"]["isError"], r

    # Every acknowledged call is on the record, and the trail verifies.
    out = subprocess.run([WARDEN, "log", "-p", str(lb.file), "--json", "--tool", "update_finding_status",
                          "--limit", "1000000"], capture_output=True, text=True, env={**os.environ, "WARDEN_LOG": "warn"})
    assert out.returncode == 0, out.stderr
    recorded = {json.loads(l).get("trace_id") for l in out.stdout.splitlines() if l.strip()}
    missing = [t for t in acknowledged if t not in recorded]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged calls have no record"
    verify = subprocess.run([WARDEN, "audit", "verify", "-p", str(lb.file)], capture_output=True, text=True,
                            env={**os.environ, "WARDEN_LOG": "warn"})
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The killed instance comes back on its port and serves again.
    lb.restart(1)
    before = lb.instances[1].operations()
    deadline = time.monotonic() + 20
    with httpx2.Client(timeout=20) as http:
        while lb.instances[1].operations() == before:
            assert time.monotonic() < deadline, "the restarted instance never served a call"
            _call(http, lb.url, lb.key, "search_vendors", {"limit": 1})
            time.sleep(0.2)
    print(f"kill -9: {len(acknowledged)} acknowledged writes, {len(failures)} failed while the instance died "
          f"({sorted(set(map(str, failures)))}); every acknowledged one recorded; verify OK; restarted instance serving")


def test_a_limit_holds_whichever_instances_serve_the_calls(lb):
    """`limits.tools.upcoming_obligations` allows LIMIT calls a minute per user (all at once):
    60 calls through the balancer, spread over the three instances, let through at most
    LIMIT plus what the bucket refilled meanwhile (the stated bound: buckets are shared and
    debited before use, so never more; with a grant of one token nothing is stranded, so
    never fewer), and every refusal names the limit and when to retry."""
    if lb is None:
        return
    import math
    import time

    from cluster import LIMIT

    key = lb.cli("key", "add", "--org", "acme", "--user", EMAIL, "--name", "limited", "--scope", "mcp:read")
    before = [i.operations() for i in lb.instances]
    allowed, refused = 0, []
    started = time.monotonic()
    with httpx2.Client(timeout=20) as http:
        for _ in range(60):
            status, r = _call(http, lb.url, key, "upcoming_obligations", {"within_days": 30})
            assert status == 200, status
            if "error" in r:
                refused.append(r["error"])
            else:
                allowed += 1
    elapsed = time.monotonic() - started
    served = [i.operations() - b for i, b in zip(lb.instances, before)]
    assert sum(1 for n in served if n > 0) >= 2, f"the calls all landed on one instance: {served}"
    bound = LIMIT + math.ceil(LIMIT * elapsed / 60)
    assert LIMIT <= allowed <= bound, f"{allowed} calls let through in {elapsed:.1f} s; the limit allows {LIMIT} to {bound}"
    for e in refused:
        assert e["code"] == -32029 and e["data"]["limit"] == "limits.tools.upcoming_obligations", e
        assert e["data"]["retry_after_seconds"] >= 1, e
    print(f"limit {LIMIT}/min: {allowed} of 60 let through in {elapsed:.1f} s over instances {served}")


def _records(lb, event):
    out = subprocess.run([WARDEN, "log", "-p", str(lb.file), "--json", "--event", event, "--limit", "1000000"],
                         capture_output=True, text=True, env={**os.environ, "WARDEN_LOG": "warn"})
    assert out.returncode == 0, out.stderr
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


def _purge_runs(lb):
    runs = [json.loads(r["detail"]) for r in _records(lb, "retention_purge_run")]
    return sorted(runs, key=lambda d: d["started_at"])


def _assert_never_concurrent(runs):
    for a, b in zip(runs, runs[1:]):
        assert a["finished_at"] <= b["started_at"], f"two purges overlapped: {a} and {b}"


def test_the_retention_purge_runs_on_one_instance_at_a_time_and_survives_its_holder(lb):
    """With `audit.purge_every_seconds: 1`, three instances share one purge: the trail's
    `retention_purge_run` records (each naming its instance, start and end) never overlap;
    when the instance running it is killed with SIGKILL, another takes it over (after the
    lease it held runs out), and the trail shows runs by the new holder."""
    if lb is None:
        return
    import time

    deadline = time.monotonic() + 30
    while len(_purge_runs(lb)) < 3:
        assert time.monotonic() < deadline, "the purge never ran three times"
        time.sleep(0.5)
    runs = _purge_runs(lb)
    _assert_never_concurrent(runs)
    holder = runs[-1]["holder"]
    pids = {i.proc.pid: n for n, i in enumerate(lb.instances)}
    pid = int(holder.split()[1])
    assert pid in pids, f"the purge ran on {holder}, not on one of {list(pids)}"
    victim = pids[pid]
    lb.instances[victim].proc.kill()
    lb.instances[victim].proc.wait(timeout=10)
    killed_at = runs[-1]["finished_at"]

    deadline = time.monotonic() + 45
    while True:
        after = [r for r in _purge_runs(lb) if r["started_at"] > killed_at and r["holder"] != holder]
        if after:
            break
        assert time.monotonic() < deadline, "no other instance took the purge over"
        time.sleep(0.5)
    runs = _purge_runs(lb)
    _assert_never_concurrent(runs)
    assert all(r["outcome"] == "success" for r in runs), runs
    assert len({r["holder"] for r in runs}) >= 2
    lb.restart(victim)
    print(f"purge: {len(runs)} runs, never overlapping; {holder} killed, {after[0]['holder']} took over")


def test_audit_verifies_from_every_instances_project_and_an_unregistered_key_is_refused(lb):
    """Each instance signs with its own registered key. After all three served calls and
    signed checkpoints (each signs one when it stops), `warden audit verify` passes from
    every instance's project; a fourth instance with a key nobody registered refuses to
    start, saying how to register it. Runs last: it stops the cluster's instances."""
    if lb is None:
        return
    import time

    from cluster import NotStarted, instance_file, start_instance

    with httpx2.Client(timeout=20) as http:
        before = [i.operations() for i in lb.instances]
        deadline = time.monotonic() + 20
        while any(i.operations() == b for i, b in zip(lb.instances, before)):
            assert time.monotonic() < deadline, "not every instance served a call"
            status, r = _call(http, lb.url, lb.key, "search_vendors", {"limit": 1})
            assert status == 200, status
        # One at a time: a call of its own, then a graceful stop, which signs a checkpoint
        # over it with this instance's key.
        for i in lb.instances:
            status, r = _call(http, i.url, lb.key, "search_vendors", {"limit": 1})
            assert status == 200, status
            i.proc.terminate()
            assert i.proc.wait(timeout=30) == 0
    db_url = [l for l in lb.file.read_text().splitlines() if l.strip().startswith("postgres:")][0].split(":", 1)[1].strip()
    signers = subprocess.run(["psql", db_url, "-tAc", "SELECT count(DISTINCT key_id) FROM audit_checkpoints"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert signers == "3", f"checkpoints signed by {signers} keys, not 3"
    for i in lb.instances:
        v = subprocess.run([WARDEN, "audit", "verify", "-p", str(i.file)], capture_output=True, text=True,
                           env={**os.environ, "WARDEN_LOG": "warn"})
        assert v.returncode == 0, f"verify from {i.file.name}: {v.stdout}{v.stderr}"
        assert "BROKEN" not in v.stdout
    stranger = instance_file(lb.file, 9)
    try:
        start_instance(stranger, {}).proc.terminate()
        raise AssertionError("an instance with an unregistered signing key started")
    except NotStarted as e:
        assert "not a registered signer" in str(e) and "warden audit signer add --public-key" in str(e), str(e)
