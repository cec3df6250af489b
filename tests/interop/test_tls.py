"""HTTPS checked by tools nobody here wrote: sslyze (PyPI, with its own OpenSSL build that
still speaks TLS 1.0 and 1.1, so "refused" means refused) scans `warden serve --tls-cert
--tls-key` with a CA made by this test, and the official MCP Python SDK calls tools over
HTTPS trusting only that CA."""

import datetime
import ipaddress
import json
import os
import ssl
import tempfile
from pathlib import Path

import anyio
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sslyze import (
    Scanner,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

from warden_fixtures import project, server


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_leaf(d: Path, dns_names=("localhost",), ips=("127.0.0.1",)):
    """A CA, and a leaf for `ips` and `dns_names` (by default 127.0.0.1 and localhost) signed
    by it: (ca.pem, cert.pem, key.pem) in `d`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Warden interop CA")).issuer_name(_name("Warden interop CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name("warden")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([*(x509.IPAddress(ipaddress.ip_address(i)) for i in ips),
                                                        *(x509.DNSName(n) for n in dns_names)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem, cert_pem, key_pem = d / "ca.pem", d / "cert.pem", d / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(key_pem, 0o600)
    return ca_pem, cert_pem, key_pem


@pytest.fixture(scope="module")
def https_server():
    with tempfile.TemporaryDirectory() as d, project() as (file, key):
        ca, cert, tls_key = make_ca_and_leaf(Path(d))
        with server(file, "--tls-cert", str(cert), "--tls-key", str(tls_key)) as url:
            assert url.startswith("https://127.0.0.1:"), url
            yield url, key, ca


def scan(url, commands):
    port = int(url.split(":")[2].split("/")[0])
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(server_location=ServerNetworkLocation("127.0.0.1", port),
                                           scan_commands=commands)])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    return result.scan_result


AEAD = ("GCM", "CHACHA20_POLY1305")


def test_only_tls_1_2_and_1_3_with_forward_secret_aead_suites(https_server):
    url, _, _ = https_server
    r = scan(url, {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
                   ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES,
                   ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                   ScanCommand.TLS_COMPRESSION, ScanCommand.HEARTBLEED})
    for old in ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"):
        attempt = getattr(r, old)
        assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, old
        assert attempt.result.accepted_cipher_suites == [], (old, attempt.result.accepted_cipher_suites)
    accepted = {}
    for version in ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites"):
        attempt = getattr(r, version)
        assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, version
        names = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
        assert names, f"{version}: nothing accepted"
        accepted[version] = names
    # TLS 1.2: ephemeral key exchange and an AEAD only; TLS 1.3 suites are all AEAD.
    for name in accepted["tls_1_2_cipher_suites"]:
        assert "_ECDHE_" in name and name.endswith(tuple(s + "_SHA256" for s in AEAD) + tuple(s + "_SHA384" for s in AEAD) + ("CHACHA20_POLY1305_SHA256",)), name
    for name in accepted["tls_1_3_cipher_suites"]:
        assert any(a in name for a in AEAD), name
    assert r.tls_compression.result.supports_compression is False
    assert r.heartbleed.result.is_vulnerable_to_heartbleed is False
    print(f"sslyze: {json.dumps(accepted)}")


def test_hsts_is_sent(https_server):
    url, _, _ = https_server
    r = scan(url, {ScanCommand.HTTP_HEADERS})
    hsts = r.http_headers.result.strict_transport_security_header
    assert hsts is not None, r.http_headers.result
    assert hsts.max_age == 31536000 and hsts.include_subdomains is True and hsts.preload is False


def test_python_sdk_over_https_trusting_the_test_ca(https_server):
    url, key, ca = https_server
    context = ssl.create_default_context(cafile=str(ca))

    async def main():
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, verify=context, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "search_vendors" in tools
                found = await client.call_tool("search_vendors", {"tier": "critical", "limit": 2})
                assert not found.is_error
                assert json.loads(found.content[0].text)["rows"]
        # Without the CA, the client refuses the server.
        async with httpx2.AsyncClient(timeout=10) as stranger:
            with pytest.raises(Exception):
                await stranger.get(url)

    anyio.run(main)
