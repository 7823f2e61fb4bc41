"""Which protocol a client gets: ALPN over TLS (h2 preferred, http/1.1 for clients offering only
that), h2c by prior knowledge on a plain listener (and not when `h2c=False`), and the RFC 9113
section 9.2 refusal of TLS 1.2 connections with a blocklisted cipher."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time

import httpx
import pytest
from h2.errors import ErrorCodes
from h2_client import PREFACE, SETTINGS, client_tls_context, h2_connection, respond
from support import TIMEOUT, captured_log, http_app, tls_settings

pytestmark = pytest.mark.timeout(30)

CURL = shutil.which("curl")


def curl_has_http2() -> bool:
    if CURL is None:
        return False
    output = subprocess.run([CURL, "-V"], capture_output=True, text=True, timeout=10).stdout
    return "HTTP2" in output


needs_curl = pytest.mark.skipif(not curl_has_http2(), reason="curl with HTTP/2 support is needed")


@http_app
async def version_app(scope, receive, send):
    """Answers with the HTTP version and scheme the app saw."""
    body = f"{scope['http_version']} {scope['scheme']}".encode()
    await respond(send, 200, body)


def tls_handshake(port: int, context: ssl.SSLContext) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return tls.selected_alpn_protocol()


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CURL, "-s", "-S", "--max-time", "10", "-w", "\n%{http_version}", *args],
        capture_output=True, text=True, timeout=20,
    )


# -- ALPN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("offer", [["h2", "http/1.1"], ["http/1.1", "h2"], ["h2"]])
def test_alpn_selects_h2_whenever_the_client_offers_it(serve, certs, offer):
    context = certs.client_context()
    context.set_alpn_protocols(offer)
    with serve(version_app, **tls_settings(certs)) as server:
        assert tls_handshake(server.port, context) == "h2"


def test_alpn_client_offering_only_http11_gets_http11(serve, certs):
    context = certs.client_context()
    context.set_alpn_protocols(["http/1.1"])
    with serve(version_app, **tls_settings(certs)) as server:
        assert tls_handshake(server.port, context) == "http/1.1"
        with httpx.Client(verify=certs.client_context(), http2=False, timeout=TIMEOUT) as client:
            response = client.get(f"https://localhost:{server.port}/")
        assert response.http_version == "HTTP/1.1"
        assert response.text == "1.1 https"


def test_httpx_http2_over_tls(serve, certs):
    with serve(version_app, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=TIMEOUT) as client:
        responses = [client.get(f"https://localhost:{server.port}/{n}") for n in range(3)]
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200
        assert response.text == "2 https"


def test_raw_h2_client_over_tls(serve, certs):
    with serve(version_app, **tls_settings(certs)) as server, \
            h2_connection(server.port, client_tls_context(certs.ca_file)) as client:
        result = client.response(client.request("/"))
    assert result.status == 200
    assert bytes(result.data) == b"2 https"
    # The server's first frame is its SETTINGS (RFC 9113 section 3.4).
    assert client.frames[0].type == SETTINGS and "ACK" not in client.frames[0].flags


@needs_curl
def test_curl_http2_over_tls(serve, certs):
    with serve(version_app, **tls_settings(certs)) as server:
        done = curl("--http2", "--cacert", certs.ca_file, f"https://localhost:{server.port}/")
    assert done.returncode == 0, done.stderr
    body, _, version = done.stdout.rpartition("\n")
    assert (body, version) == ("2 https", "2")


# -- h2c ----------------------------------------------------------------------------------------


def test_h2c_prior_knowledge_with_httpx(serve):
    with serve(version_app) as server, \
            httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        responses = [client.get(f"{server.url}/{n}") for n in range(3)]
    for response in responses:
        assert response.http_version == "HTTP/2"
        assert response.text == "2 http"


def test_h2c_prior_knowledge_with_raw_client(serve):
    with serve(version_app) as server, h2_connection(server.port) as client:
        first = client.response(client.request("/one"))
        second = client.response(client.request("/two"))
    assert (first.status, bytes(first.data)) == (200, b"2 http")
    assert (second.status, bytes(second.data)) == (200, b"2 http")


def test_h2c_preface_split_over_many_writes(serve):
    """The preface is recognised however the client's writes split it."""
    with serve(version_app) as server, h2_connection(server.port, start=False) as client:
        client.conn.initiate_connection()
        opening = client.conn.data_to_send()
        assert opening.startswith(PREFACE)
        for byte in PREFACE:
            client.send_raw(bytes((byte,)))
            time.sleep(0.002)
        client.send_raw(opening[len(PREFACE):])
        result = client.response(client.request("/"))
    assert (result.status, bytes(result.data)) == (200, b"2 http")


@needs_curl
def test_curl_http2_prior_knowledge(serve):
    with serve(version_app) as server:
        done = curl("--http2-prior-knowledge", f"{server.url}/")
    assert done.returncode == 0, done.stderr
    body, _, version = done.stdout.rpartition("\n")
    assert (body, version) == ("2 http", "2")


def test_http11_still_served_on_an_h2c_listener(serve):
    """Methods starting like the preface ("P...") are HTTP/1.1, even when split after "P"."""
    with serve(version_app) as server:
        response = httpx.get(f"{server.url}/", timeout=TIMEOUT)
        assert (response.http_version, response.text) == ("HTTP/1.1", "1.1 http")
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"P")
            time.sleep(0.05)
            sock.sendall(b"UT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data
        assert data.endswith(b"1.1 http")


def test_h2c_disabled_refuses_prior_knowledge_and_serves_http11(serve):
    with serve(version_app, h2c=False) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            sock.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass
        # Not HTTP/2: no SETTINGS frame, an HTTP/1.1 error (or nothing) and a close.
        assert data == b"" or data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"), data
        with pytest.raises(httpx.HTTPError), \
                httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
            client.get(f"{server.url}/")
        response = httpx.get(f"{server.url}/", timeout=TIMEOUT)
        assert (response.http_version, response.text) == ("HTTP/1.1", "1.1 http")


@needs_curl
def test_h2c_disabled_curl_prior_knowledge_fails(serve):
    with serve(version_app, h2c=False) as server:
        done = curl("--http2-prior-knowledge", f"{server.url}/")
        assert done.returncode != 0, done.stdout
        plain = curl("--http1.1", f"{server.url}/")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "1.1 http\n1.1"


# -- RFC 9113 section 9.2: TLS requirements -------------------------------------------------


def tls12_context(certs, cipher: str, alpn=("h2",)) -> ssl.SSLContext:
    context = client_tls_context(certs.ca_file, alpn)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.set_ciphers(cipher)
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL does not offer {cipher}")
    return context


# trustme issues an ECDSA certificate, so the CBC suite has to be an ECDSA one. The server's
# default cipher list (ssl.PROTOCOL_TLS_SERVER) still has ECDHE-ECDSA-AES128-SHA256, which is on
# the HTTP/2 block list (RFC 9113 appendix A); the SHA-1 suites are not offered at all.
BLOCKLISTED = "ECDHE-ECDSA-AES128-SHA256"


def test_tls12_with_blocklisted_cipher_gets_goaway_inadequate_security(serve, certs):
    context = tls12_context(certs, BLOCKLISTED)
    with captured_log() as log, serve(version_app, **tls_settings(certs)) as server:
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(h2_connection(server.port, context))
            except ssl.SSLError as exc:
                pytest.skip(f"the handshake cannot use {BLOCKLISTED}: {exc}")
            assert client.sock.version() == "TLSv1.2"
            assert client.sock.cipher()[0] == BLOCKLISTED
            stream = client.request("/")
            assert client.read_until_closed(3), "the server kept the connection open"
        goaways = client.goaway_frames()
        assert goaways, client.frames
        assert goaways[-1].error_code == ErrorCodes.INADEQUATE_SECURITY
        assert client.streams[stream].headers is None  # the app never answered it
        # HTTP/1.1 with the same cipher is not HTTP/2's business: it is served.
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw, \
                tls12_context(certs, BLOCKLISTED, ["http/1.1"]).wrap_socket(
                    raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            with contextlib.suppress(ssl.SSLError, ConnectionResetError):
                while chunk := tls.recv(65536):
                    data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"1.1 https"), data
    assert not log.tracebacks()


def test_tls12_with_aead_cipher_is_served_over_h2(serve, certs):
    context = tls12_context(certs, "ECDHE-ECDSA-AES128-GCM-SHA256")
    with serve(version_app, **tls_settings(certs)) as server, \
            h2_connection(server.port, context) as client:
        assert client.sock.version() == "TLSv1.2"
        result = client.response(client.request("/"))
        assert (result.status, bytes(result.data)) == (200, b"2 https")
        assert client.goaway is None

