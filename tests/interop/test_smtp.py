"""Sign-in links delivered by SMTP to a real SMTP server (aiosmtpd), through Warden's sign-in
page, and redeemable once."""

import email
import html
import re
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import httpx2
from aiosmtpd.controller import Controller

from warden_fixtures import EMAIL, server, warden


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content.decode("utf-8", "replace")))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sign_in_link_by_smtp():
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / "p"
            warden("init", str(target))
            file = target / "warden.yaml"
            file.write_text(
                file.read_text()
                + f"\nlogin:\n  smtp:\n    host: 127.0.0.1\n    port: {port}\n    tls: none\n    from: warden@acme.example\n"
            )
            f = str(file)
            warden("org", "create", "acme", "-p", f)
            warden("user", "add", EMAIL, "--org", "acme", "--role", "member", "-p", f)
            with server(file) as url:
                base = url.rsplit("/mcp", 1)[0]
                with httpx2.Client(follow_redirects=False, timeout=30) as http:
                    client = http.post(f"{base}/register", json={"redirect_uris": ["http://127.0.0.1:9/cb"]}).json()
                    q = urlencode({"response_type": "code", "client_id": client["client_id"],
                                   "redirect_uri": "http://127.0.0.1:9/cb", "state": "s",
                                   "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                                   "code_challenge_method": "S256"})
                    page = http.get(f"{base}/authorize?{q}")
                    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
                    cont = html.unescape(re.search(r'name="continue" value="([^"]+)"', page.text).group(1))
                    r = http.post(f"{base}/login/magic", data={"csrf_token": csrf, "continue": cont, "email": EMAIL})
                    assert r.status_code == 200, r.text
                    assert "sign-in link is on its way" in r.text

                    assert len(inbox.messages) == 1
                    rcpts, mail = inbox.messages[0]
                    assert rcpts == [EMAIL]
                    assert "Subject: Your Warden sign-in link" in mail
                    body = email.message_from_string(mail).get_payload(decode=True).decode()
                    link = re.search(r"(http://\S+/login/magic\?token=\S+)", body).group(1)

                    first = httpx2.get(link, follow_redirects=False)
                    assert first.status_code == 303
                    assert first.headers["location"].startswith("/authorize?")
                    assert "warden_session=" in first.headers["set-cookie"]
                    again = httpx2.get(link, follow_redirects=False)
                    assert again.status_code == 400
    finally:
        smtp.stop()


def test_plain_smtp_to_a_remote_host_is_refused():
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "p"
        warden("init", str(target))
        file = target / "warden.yaml"
        file.write_text(file.read_text() + "\nlogin:\n  smtp:\n    host: mail.example.com\n    tls: none\n    from: w@x.example\n")
        import subprocess, os
        out = subprocess.run([os.environ["WARDEN_BIN"], "check", "-p", str(file)], capture_output=True, text=True)
        assert out.returncode == 1
        assert "login.smtp.tls: `none` sends mail and credentials in clear" in out.stderr
