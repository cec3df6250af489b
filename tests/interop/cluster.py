"""Several `warden serve` processes on one PostgreSQL state store behind HAProxy (Debian's,
started here: round-robin, nothing sticky, health checks on /readyz). Every instance serves
the same project with `server.sessions: stateless`, so any of them can answer any request,
and each has its own metrics listener so a test can see which instances served it.

Each instance has its own audit signing key, as on separate machines: the first registers
its own; each other one is refused at start until it is registered the way an operator
would, with the command its refusal prints, run on the first instance's project (and the
first key endorsed back from its project, so verification works from either)."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from warden_fixtures import EMAIL, PASSWORD, WARDEN, warden


# `upcoming_obligations` may be called this many times a minute per user (a burst of as many).
LIMIT = 12


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Instance:
    proc: subprocess.Popen
    url: str
    metrics: str
    file: Path
    log: list = field(default_factory=list)

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def operations(self, method="tools/call"):
        """How many `method` operations this instance has measured, from its /metrics."""
        text = httpx2.get(self.metrics, timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("mcp_server_operation_duration_seconds_count") and f'mcp_method_name="{method}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class Cluster:
    file: Path
    url: str
    key: str
    instances: list
    haproxy: subprocess.Popen

    def cli(self, *args, stdin=None):
        return warden(*args, "-p", str(self.file), stdin=stdin)

    def restart(self, i: int):
        """Starts instance `i` again on its old port (after it was killed)."""
        old = self.instances[i]
        self.instances[i] = start_instance(old.file, {}, old.port)


def start_instance(file: Path, env: dict, port: int = 0) -> Instance:
    """`warden serve` on `port` (a free one when 0, so that a restart can take it again).
    A port found free can be taken by another process before the instance binds it; with
    ports of its own choosing, the instance is started again on new ones (three tries)."""
    for attempt in range(3):
        try:
            return _start_instance(file, env, port)
        except NotStarted as e:
            if port or attempt == 2 or "Address already in use" not in str(e):
                raise
    raise AssertionError("unreachable")


def _start_instance(file: Path, env: dict, port: int = 0) -> Instance:
    port = port or free_port()
    metrics_port = free_port()
    proc = subprocess.Popen(
        [WARDEN, "serve", "-p", str(file), "--bind", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, **env, "WARDEN_LOG": "info", "METRICS_BIND": f"127.0.0.1:{metrics_port}"},
    )
    log = []
    url = None
    deadline = time.time() + 30
    for line in proc.stderr:
        log.append(line)
        m = re.search(r"serving MCP on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
        if time.time() > deadline:
            break
    if not url:
        proc.kill()
        raise NotStarted("".join(log) + proc.stderr.read())
    threading.Thread(target=lambda: [log.append(l) for l in proc.stderr], daemon=True).start()
    return Instance(proc, url, f"http://127.0.0.1:{metrics_port}/metrics", file, log)


class NotStarted(Exception):
    """`warden serve` exited (or never said it was serving); the message is its log."""


def instance_file(first: Path, n: int) -> Path:
    """Instance `n`'s project: the first's, with a signing key of its own."""
    if n == 0:
        return first
    other = first.with_name(f"warden-{n}.yaml")
    base = first.read_text().split("\naudit:\n")[0]
    other.write_text(base + f"\naudit:\n  purge_every_seconds: 1\n  signing_key: .warden/audit-{n}.key\n")
    return other


def register_signer(first: Path, other: Path):
    """Registers `other`'s signing key the way an operator would: start it, take the command
    its refusal prints, run it on the first (registered) instance's project; then endorse the
    first key from `other`'s project, so that verification from there reaches it too."""
    try:
        start_instance(other, {}).proc.terminate()
        raise AssertionError(f"{other.name} started with an unregistered signing key")
    except NotStarted as e:
        refusal = str(e)
    assert "not a registered signer" in refusal, refusal
    command = next(p for p in refusal.split("`") if p.startswith("warden audit signer add --public-key "))
    warden(*command.split()[1:], "-p", str(first))
    listed = warden("audit", "signer", "list", "-p", str(first))
    first_key = next(l.split()[1] for l in listed.splitlines() if "first instance" in l)
    warden("audit", "signer", "add", "--public-key", first_key, "-p", str(other))


def haproxy_config(port: int, backends: list) -> str:
    servers = "\n".join(
        f"    server w{i} {b.url.removeprefix('http://').removesuffix('/mcp')} check inter 500ms fall 2 rise 1"
        for i, b in enumerate(backends))
    return f"""global
    maxconn 2000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend warden
    bind 127.0.0.1:{port}
    default_backend instances
    option forwardfor
backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


@contextmanager
def cluster(admin_url: str, n: int = 3):
    haproxy = shutil.which("haproxy")
    assert haproxy, "haproxy is not installed (tests/run installs Debian's)"
    name = f"warden_lb_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    db_url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    instances = []
    lb = None
    with tempfile.TemporaryDirectory() as d:
        try:
            target = Path(d) / "p"
            warden("init", str(target))
            file = target / "warden.yaml"
            port = free_port()
            yaml = file.read_text()
            yaml = yaml.replace(
                "  bind: 127.0.0.1:8080",
                f"  bind: 127.0.0.1:8080\n  public_url: http://127.0.0.1:{port}\n  sessions: stateless\n"
                "  trusted_proxies: [127.0.0.1]\n"
                "  limits:\n    max_connections_per_address: 1024\n  metrics:\n    bind: ${METRICS_BIND}")
            # One tool limited per user, for the test of limits shared across instances.
            file.write_text(yaml + f"\nstate:\n  postgres: {db_url}\n"
                            f"\nlimits:\n  tools:\n    upcoming_obligations: {{ burst: {LIMIT}, per_minute: {LIMIT} }}\n")
            f = str(file)
            warden("org", "add", "acme", "--name", "Acme", "-p", f)
            warden("user", "add", EMAIL, "--org", "acme", "--role", "admin", "--password-stdin", "-p", f, stdin=PASSWORD)
            key = warden("key", "add", "--org", "acme", "--user", EMAIL, "--name", "lb", "--scope", "mcp:read mcp:write", "-p", f)
            files = [instance_file(file, i) for i in range(n)]
            file.write_text(file.read_text() + "\naudit:\n  purge_every_seconds: 1\n")
            # The first instance registers its own signing key; each other is registered.
            instances.append(start_instance(file, {}))
            for other in files[1:]:
                register_signer(file, other)
                instances.append(start_instance(other, {}))
            cfg = Path(d) / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, instances))
            lb = subprocess.Popen([haproxy, "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            url = f"http://127.0.0.1:{port}/mcp"
            deadline = time.time() + 20
            while True:
                try:
                    if httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                assert lb.poll() is None, "haproxy stopped: " + (lb.stderr.read() if lb.stderr else "")
                assert time.time() < deadline, "the balancer never became ready"
                time.sleep(0.2)
            # Every instance up in HAProxy's view before tests count on round-robin.
            time.sleep(1.5)
            yield Cluster(file, url, key, instances, lb)
        finally:
            if lb:
                lb.terminate()
                lb.wait(timeout=10)
            for i in instances:
                i.proc.terminate()
            for i in instances:
                i.proc.wait(timeout=15)
            subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
