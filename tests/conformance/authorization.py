#!/usr/bin/env python3
"""Runs the MCP conformance suite's `authorization` command against Warden's authorization
server, standing in for the person who signs in and consents (the suite has no headless
mode: it prints an authorization URL and waits for its loopback callback).

usage: authorization.py WARDEN_BIN NODE CONFORMANCE_JS
Exits with the suite's status; its summary line is printed."""

import html
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

WARDEN, NODE, CONFORMANCE = sys.argv[1:4]
EMAIL, PASSWORD = "ana@acme.example", "correct horse battery staple"


def warden(*args, stdin=None):
    out = subprocess.run([WARDEN, *args], input=stdin, capture_output=True, text=True, env={**os.environ, "WARDEN_LOG": "warn"})
    if out.returncode != 0:
        sys.exit(f"warden {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


class Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms, self.cur = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.cur = {"action": a.get("action"), "fields": []}
            self.forms.append(self.cur)
        elif self.cur is not None and tag == "input" and a.get("name") and a.get("type") == "hidden":
            self.cur["fields"].append((a["name"], html.unescape(a.get("value", ""))))

    def handle_endtag(self, tag):
        if tag == "form":
            self.cur = None


def sign_in_and_consent(authorize_url):
    """What a person does in the browser: sign in, allow, follow the redirect."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), NoRedirect)

    def req(method, url, data=None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        r = urllib.request.Request(url, data=body, method=method)
        try:
            resp = opener.open(r)
        except urllib.error.HTTPError as e:
            resp = e
        return resp.status, resp.headers, resp.read().decode("utf-8", "replace")

    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(authorize_url))

    def form(page, action):
        p = Forms()
        p.feed(page)
        return next(f for f in p.forms if f["action"] == action)

    _, _, page = req("GET", authorize_url)
    data = dict(form(page, "/login")["fields"]) | {"email": EMAIL, "password": PASSWORD}
    _, h, _ = req("POST", origin + "/login", data)
    _, _, page = req("GET", urllib.parse.urljoin(origin, h["location"]))
    data = form(page, "/authorize")["fields"] + [("decision", "allow")]
    _, h, _ = req("POST", origin + "/authorize", data)
    req("GET", h["location"])


def main():
    with tempfile.TemporaryDirectory() as d:
        file = str(Path(d) / "p" / "warden.yaml")
        warden("init", str(Path(d) / "p"))
        warden("org", "create", "acme", "-p", file)
        warden("user", "add", EMAIL, "--org", "acme", "--role", "admin", "--password-stdin", "-p", file, stdin=PASSWORD)
        server = subprocess.Popen([WARDEN, "serve", "-p", file, "--bind", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        try:
            base = None
            for line in server.stderr:
                m = re.search(r"serving MCP on (http://\S+)/mcp", line)
                if m:
                    base = m.group(1)
                    break
            if not base:
                sys.exit("warden did not start")
            threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
            port = free_port()
            reg = urllib.request.Request(
                base + "/register",
                data=json.dumps({"client_name": "MCP conformance suite", "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
                                 "token_endpoint_auth_method": "none"}).encode(),
                headers={"content-type": "application/json"},
            )
            client_id = json.load(urllib.request.urlopen(reg))["client_id"]
            suite = subprocess.Popen(
                [NODE, CONFORMANCE, "authorization", "--url", base, "--client-id", client_id, "--resource", base + "/mcp",
                 "--port", str(port), "-o", str(Path(d) / "results")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            driven = False
            for line in suite.stdout:
                print(line, end="", flush=True)
                if not driven and re.match(r"^https?://\S+/authorize\?", line.strip()):
                    driven = True
                    # The suite starts its callback server after printing the URL.
                    threading.Thread(target=lambda u=line.strip(): (time.sleep(0.5), sign_in_and_consent(u)), daemon=True).start()
            return suite.wait()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
