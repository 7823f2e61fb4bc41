"""The TLS listener: ALPN, protocol versions, failed handshakes, ciphers and mutual TLS."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import warnings
from typing import Any

import httpx
import pytest
import trustme
from cryptography import x509
from support import read_response, tls_settings

pytestmark = pytest.mark.timeout(30)

GET = b"GET /who HTTP/1.1\r\nHost: localhost\r\n\r\n"


class TLSRecorder:
    """Answers 200 and keeps the TLS extension of each request."""

    def __init__(self) -> None:
        self.tls: list[dict[str, Any] | None] = []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.tls.append(scope["extensions"].get("tls"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": scope["scheme"].encode()})


@contextlib.contextmanager
def tls_connection(port: int, context: ssl.SSLContext):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        yield tls


def https_get_works(port: int, certs) -> bool:
    response = httpx.get(f"https://localhost:{port}/who", verify=certs.client_context(), timeout=5)
    return response.status_code == 200 and response.text == "https"


def exchange_fails(port: int, context: ssl.SSLContext) -> bytes:
    """Try a request with `context`; return whatever HTTP came back (b"" when refused)."""
    received = b""
    try:
        with tls_connection(port, context) as tls:
            tls.sendall(GET)
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                received += chunk
    except (ssl.SSLError, ConnectionError, OSError):
        pass
    return received


# -- ALPN -------------------------------------------------------------------------------------


def test_alpn_prefers_h2_and_serves_http11_to_clients_offering_only_that(serve, certs):
    both = certs.client_context()
    both.set_alpn_protocols(["http/1.1", "h2"])
    only_http11 = certs.client_context()
    only_http11.set_alpn_protocols(["http/1.1"])
    with serve(TLSRecorder(), **tls_settings(certs)) as server:
        with tls_connection(server.port, both) as tls:
            assert tls.selected_alpn_protocol() == "h2"
        with tls_connection(server.port, only_http11) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(GET)
            assert read_response(tls).startswith(b"HTTP/1.1 200 ")


def test_client_without_alpn_gets_http11(serve, certs):
    context = certs.client_context()
    with serve(TLSRecorder(), **tls_settings(certs)) as server, \
            tls_connection(server.port, context) as tls:
        assert tls.selected_alpn_protocol() is None
        tls.sendall(GET)
        response = read_response(tls)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"https")


def test_http2_capable_httpx_client_is_served_http2(serve, certs):
    with serve(TLSRecorder(), **tls_settings(certs)) as server, \
            httpx.Client(http2=True, verify=certs.client_context(), timeout=5) as client:
        response = client.get(f"https://localhost:{server.port}/who")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"


# -- protocol versions ------------------------------------------------------------------------


def legacy_client_context(certs, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that really offers an old TLS version (OpenSSL 3 hides them at the default
    security level), so a refusal is the server's doing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        certs.ca.configure_trust(context)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = version
    return context


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_below_1_2_is_refused_and_the_server_goes_on(serve, certs, version):
    context = legacy_client_context(certs, getattr(ssl.TLSVersion, version))
    with serve(TLSRecorder(), **tls_settings(certs)) as server:
        with pytest.raises(ssl.SSLError) as info, tls_connection(server.port, context):
            pass
        # the server said no, rather than the client being unable to ask
        assert "NO_PROTOCOLS_AVAILABLE" not in str(info.value)
        assert https_get_works(server.port, certs)


@pytest.mark.parametrize(("version", "code"), [("TLSv1_2", 0x0303), ("TLSv1_3", 0x0304)])
def test_tls_1_2_and_1_3_are_served(serve, certs, version, code):
    context = certs.client_context()
    context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
    app = TLSRecorder()
    with serve(app, **tls_settings(certs)) as server, tls_connection(server.port, context) as tls:
        tls.sendall(GET)
        assert read_response(tls).startswith(b"HTTP/1.1 200 ")
    assert app.tls[0]["tls_version"] == code


def test_ciphers_setting_limits_tls12_ciphers(serve, certs):
    # trustme's keys are ECDSA
    chosen = "ECDHE-ECDSA-AES128-GCM-SHA256"
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with serve(TLSRecorder(), **tls_settings(certs, ciphers=chosen)) as server:
        with tls_connection(server.port, context) as tls:
            assert tls.cipher()[0] == chosen
        other = certs.client_context()
        other.maximum_version = ssl.TLSVersion.TLSv1_2
        other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
        with pytest.raises(ssl.SSLError), tls_connection(server.port, other):
            pass


# -- failed handshakes ------------------------------------------------------------------------


def test_client_not_trusting_the_certificate_and_the_server_goes_on(serve, certs):
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(untrusting)
    with serve(TLSRecorder(), **tls_settings(certs)) as server:
        with pytest.raises(ssl.SSLCertVerificationError), tls_connection(server.port, untrusting):
            pass
        assert https_get_works(server.port, certs)


def test_silent_client_is_dropped_after_the_handshake_timeout(serve, certs):
    with serve(TLSRecorder(), **tls_settings(certs, tls_handshake_timeout=0.5)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1024) == b""
            waited = time.monotonic() - started
        assert 0.3 <= waited <= 3.0
        assert https_get_works(server.port, certs)


FAILED_HANDSHAKE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"https"})
"""


def bad_handshakes(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trustme.CA().configure_trust(untrusting)
    with pytest.raises(ssl.SSLCertVerificationError), tls_connection(port, untrusting):
        pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello")
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass


def test_failed_handshakes_log_nothing_at_the_default_level(tmp_path, certs, gateway_cli):
    (tmp_path / "tlsapp.py").write_text(FAILED_HANDSHAKE_APP)
    process = gateway_cli("--certfile", certs.cert_file, "--keyfile", certs.key_file,
                          "--no-access-log", "-b", "127.0.0.1:0", "tlsapp:app", cwd=tmp_path)
    port = process.wait_listening()
    bad_handshakes(port)
    assert https_get_works(port, certs)
    time.sleep(0.2)
    returncode, output = process.stop()
    assert returncode == 0
    assert "Traceback" not in output
    for line in output.splitlines():
        assert " ERROR " not in line and " WARNING " not in line, output
        assert "handshake" not in line.lower(), output


def test_failed_handshakes_are_logged_at_debug_level(tmp_path, certs, gateway_cli):
    (tmp_path / "tlsapp.py").write_text(FAILED_HANDSHAKE_APP)
    process = gateway_cli("--certfile", certs.cert_file, "--keyfile", certs.key_file,
                          "--log-level", "debug", "-b", "127.0.0.1:0", "tlsapp:app", cwd=tmp_path)
    port = process.wait_listening()
    bad_handshakes(port)
    time.sleep(0.2)
    returncode, output = process.stop()
    assert returncode == 0
    assert "Traceback" not in output
    debug_lines = [line for line in output.splitlines()
                   if " DEBUG " in line and ("handshake" in line.lower() or "ssl" in line.lower())]
    assert len(debug_lines) >= 3, output


# -- mutual TLS -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_cert(certs) -> trustme.LeafCert:
    return certs.ca.issue_cert("client@example.com", common_name="client")


def context_with_client_cert(certs, leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = certs.client_context()
    leaf.configure_cert(context)
    return context


def assert_client_cert_in_scope(tls: dict[str, Any], leaf: trustme.LeafCert) -> None:
    expected = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    chain = tls["client_cert_chain"]
    assert len(chain) >= 1
    assert all(isinstance(pem, str) for pem in chain)
    assert x509.load_pem_x509_certificate(chain[0].encode()) == expected
    assert tls["client_cert_name"] == expected.subject.rfc4514_string()
    assert "CN=client" in tls["client_cert_name"]
    assert tls.get("client_cert_error") is None


def test_required_client_cert_rejects_a_client_without_one(serve, certs):
    settings = tls_settings(certs, verify_mode="required", ca_certs=certs.ca_file)
    app = TLSRecorder()
    with serve(app, **settings) as server:
        received = exchange_fails(server.port, certs.client_context())
        assert b"HTTP/" not in received
        assert app.tls == []


def test_required_client_cert_rejects_a_cert_from_another_ca(serve, certs):
    stranger = trustme.CA().issue_cert("client@example.com")
    settings = tls_settings(certs, verify_mode="required", ca_certs=certs.ca_file)
    app = TLSRecorder()
    with serve(app, **settings) as server:
        received = exchange_fails(server.port, context_with_client_cert(certs, stranger))
        assert b"HTTP/" not in received
        assert app.tls == []


def test_required_client_cert_accepts_a_cert_from_the_ca(serve, certs, client_cert):
    settings = tls_settings(certs, verify_mode="required", ca_certs=certs.ca_file)
    app = TLSRecorder()
    with serve(app, **settings) as server:
        response = httpx.get(f"https://localhost:{server.port}/who",
                             verify=context_with_client_cert(certs, client_cert), timeout=5)
        # and the rejected ones did not take the server down
        assert b"HTTP/" not in exchange_fails(server.port, certs.client_context())
    assert response.status_code == 200
    assert_client_cert_in_scope(app.tls[0], client_cert)


def test_optional_client_cert_accepts_clients_with_and_without(serve, certs, client_cert):
    settings = tls_settings(certs, verify_mode="optional", ca_certs=certs.ca_file)
    app = TLSRecorder()
    with serve(app, **settings) as server:
        without = httpx.get(f"https://localhost:{server.port}/who",
                            verify=certs.client_context(), timeout=5)
        with_cert = httpx.get(f"https://localhost:{server.port}/who",
                              verify=context_with_client_cert(certs, client_cert), timeout=5)
    assert without.status_code == 200 and with_cert.status_code == 200
    first, second = app.tls
    assert first["client_cert_chain"] == []
    assert first.get("client_cert_name") is None
    assert_client_cert_in_scope(second, client_cert)
