"""Shared helpers for the interop tests: a real `warden` binary, a fresh project with an
organisation, an admin with a password and an API key, and a server on port 0."""

import os
import re
import subprocess
import tempfile
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

WARDEN = os.environ["WARDEN_BIN"]
PASSWORD = "correct horse battery staple"
EMAIL = "ana@acme.example"


def warden(*args, stdin=None, env=None):
    out = subprocess.run(
        [WARDEN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "WARDEN_LOG": "warn", **(env or {})},
    )
    assert out.returncode == 0, f"warden {' '.join(args)} failed: {out.stderr}"
    return out.stdout.strip()


@contextmanager
def postgres_state_database():
    """A fresh PostgreSQL database for Warden's state, dropped afterwards."""
    admin = os.environ["WARDEN_TEST_POSTGRES_URL"]
    name = f"warden_py_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def state_backends():
    """SQLite always; PostgreSQL when WARDEN_TEST_POSTGRES_URL is set (CI sets it)."""
    if os.environ.get("WARDEN_TEST_POSTGRES_URL"):
        return ["sqlite", "postgres"]
    print("PostgreSQL half NOT run: set WARDEN_TEST_POSTGRES_URL")
    return ["sqlite"]


@contextmanager
def project(state="sqlite"):
    """Yields (project file, read-write API key)."""
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "p"
        warden("init", str(target))
        file = target / "warden.yaml"
        if state == "postgres":
            with postgres_state_database() as url:
                file.write_text(file.read_text() + f"\nstate:\n  postgres: {url}\n")
                yield file, _members(file)
        else:
            yield file, _members(file)


def _members(file):
    f = str(file)
    warden("org", "create", "acme", "--name", "Acme", "-p", f)
    warden("user", "add", EMAIL, "--org", "acme", "--role", "admin", "--password-stdin", "-p", f, stdin=PASSWORD)
    return warden("key", "create", "--org", "acme", "--user", EMAIL, "--name", "tests", "--scope", "mcp:read mcp:write", "-p", f)


@contextmanager
def server(file, *extra, env=None, log=None):
    """`warden serve` on a free port; yields its MCP URL. `env` adds to its environment; a
    list passed as `log` collects what it writes on stderr (for failure messages)."""
    log = [] if log is None else log
    proc = subprocess.Popen(
        [WARDEN, "serve", "-p", str(file), "--bind", "127.0.0.1:0", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "WARDEN_LOG": "info", **(env or {})},
    )
    url = None
    for line in proc.stderr:
        log.append(line.rstrip("\n"))
        m = re.search(r"serving MCP on (https?://\S+)", line)
        if m:
            url = m.group(1)
            break
    assert url, "warden did not report its address:\n" + "\n".join(log[-20:])
    # Keep draining stderr so the server never blocks on a full pipe.
    threading.Thread(target=lambda: [log.append(l.rstrip("\n")) for l in proc.stderr], daemon=True).start()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
