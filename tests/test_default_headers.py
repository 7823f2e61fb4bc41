"""`--header NAME:VALUE`: default response headers, as uvicorn sends them, on every response
gateway writes: the app's over HTTP/1.1 (both engines) and HTTP/2, gateway's own error
answers, and WebSocket handshake answers."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import run_cli
from h1_client import RawClient, request
from h2_client import client_tls_context, h2_connection
from support import tls_settings

pytestmark = pytest.mark.timeout(60)

HEADERS = ["X-Frame-Options: DENY", "Strict-Transport-Security:max-age=63072000", "x-empty:"]
ON_THE_WIRE = [(b"x-frame-options", b"DENY"), (b"strict-transport-security", b"max-age=63072000"),
               (b"x-empty", b"")]


async def app(scope, receive, send):
    """`/same` sends its own x-frame-options and server; `/fail` raises before responding;
    WebSockets are accepted."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/fail":
        raise RuntimeError("the app failed")
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/same":
        headers += [(b"X-Frame-Options", b"SAMEORIGIN"), (b"Server", b"the-app")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def fields(response, names=(b"x-frame-options", b"strict-transport-security", b"x-empty")):
    """The response's fields of `names`, in wire order, names lower-cased."""
    return [(name.lower(), value) for name, value in response.headers if name.lower() in names]


# -- HTTP/1.1 ------------------------------------------------------------------------------------


def test_every_response_carries_them(serve, http):
    with serve(app, http=http, headers=HEADERS) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.status == 200 and response.body == b"ok"
        assert fields(response) == ON_THE_WIRE
        assert response.get(b"server") == b"gateway"
        assert response.get(b"date") is not None
        assert response.get(b"content-type") == b"text/plain"
        # The same on the next response of the connection.
        client.send(request("GET", "/again"))
        assert fields(client.read_response()) == ON_THE_WIRE


def test_none_configured_sends_only_server_and_date(serve, http):
    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
    assert [name.lower() for name, _ in response.headers] == \
        [b"server", b"date", b"content-type", b"content-length"]


def test_app_header_of_the_same_name_is_sent_beside_it(serve, http):
    """As uvicorn: the default and the app's both go; only server and date are replaced."""
    with serve(app, http=http, headers=HEADERS) as server, RawClient(server.port) as client:
        client.send(request("GET", "/same"))
        response = client.read_response()
    assert response.get_all(b"x-frame-options") == [b"DENY", b"SAMEORIGIN"]
    assert response.get_all(b"server") == [b"the-app"]


def test_server_and_date_headers_replace_gateways(serve, http):
    """`--header server:X` is sent instead of `server: gateway`, even with --no-server-header
    (as uvicorn); `--header date:X` instead of the clock's date (uvicorn would send both)."""
    settings = {"http": http, "headers": ["Server: edge/1", "Date: Thu, 01 Jan 2026 00:00:00 GMT"],
                "server_header": False}
    with serve(app, **settings) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.get_all(b"server") == [b"edge/1"]
        assert response.get_all(b"date") == [b"Thu, 01 Jan 2026 00:00:00 GMT"]
        time.sleep(1.2)  # the date the server keeps is refreshed once a second
        client.send(request("GET", "/same"))
        response = client.read_response()
        assert response.get_all(b"server") == [b"the-app"]  # the app's own still wins
        assert response.get_all(b"date") == [b"Thu, 01 Jan 2026 00:00:00 GMT"]


def test_gateways_own_error_answers_carry_them(serve, http):
    with serve(app, http=http, headers=HEADERS, header_timeout=0.5) as server:
        with RawClient(server.port) as client:  # 400: a malformed request
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
            response = client.read_response()
            assert response.status == 400
            assert fields(response) == ON_THE_WIRE
            assert response.get(b"server") == b"gateway"
        with RawClient(server.port) as client:  # 408: a head not finished in time
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
            response = client.read_response()
            assert response.status == 408
            assert fields(response) == ON_THE_WIRE
        with RawClient(server.port) as client:  # 500: the app failed
            client.send(request("GET", "/fail"))
            response = client.read_response()
            assert response.status == 500
            assert fields(response) == ON_THE_WIRE


def test_websocket_handshake_answer_carries_them(serve, http):
    handshake = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with serve(app, http=http, headers=HEADERS) as server, RawClient(server.port) as client:
        client.send(handshake)
        response = client.read_response()
    assert response.status == 101
    assert response.get(b"sec-websocket-accept") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert fields(response) == ON_THE_WIRE


# -- HTTP/2 --------------------------------------------------------------------------------------


def test_http2_sends_them_lower_case(serve, certs):
    with serve(app, headers=HEADERS, **tls_settings(certs)) as server, \
            h2_connection(server.port, client_tls_context(certs.ca_file)) as client:
        result = client.response(client.request("/"))
        same = client.response(client.request("/same"))
        assert client.state_error is None  # h2 refuses upper-case names as malformed
    assert result.status == 200 and bytes(result.data) == b"ok"
    assert fields(result) == ON_THE_WIRE
    assert all(name == name.lower() for name, _ in result.headers)
    assert result.header(b"server") == b"gateway"
    assert [value for name, value in same.headers if name == b"x-frame-options"] == \
        [b"DENY", b"SAMEORIGIN"]
    assert [value for name, value in same.headers if name == b"server"] == [b"the-app"]


def test_http2_with_httpx(serve):
    with serve(app, headers=HEADERS) as server, \
            httpx.Client(http1=False, http2=True, timeout=5) as client:
        response = client.get(server.url + "/")
        failed = client.get(server.url + "/fail")
    assert response.http_version == "HTTP/2"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"] == "max-age=63072000"
    assert failed.status_code == 500
    assert failed.headers["x-frame-options"] == "DENY"


def test_http2_answers_before_the_app_carry_them(serve):
    """An extended CONNECT for a protocol gateway does not speak is answered 501 by gateway."""
    with serve(app, headers=HEADERS) as server, h2_connection(server.port) as client:
        client.wait_ready()
        stream = client.request("/", method="CONNECT", end=False,
                                headers=[(b":protocol", b"not-websocket")])
        result = client.response(stream)
    assert result.status == 501
    assert fields(result) == ON_THE_WIRE
    assert result.header(b"server") == b"gateway"


def test_http2_websocket_answer_carries_them(serve):
    with serve(app, headers=HEADERS) as server, h2_connection(server.port) as client:
        client.wait_ready()
        stream = client.request("/ws", method="CONNECT", end=False,
                                headers=[(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")])
        result = client.streams[stream]
        assert client.until(lambda: result.headers is not None)
    assert result.status == 200
    assert fields(result) == ON_THE_WIRE


# -- the flag ------------------------------------------------------------------------------------


HELLO = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
"""


def test_flag_from_the_command_line(tmp_path, gateway_cli):
    (tmp_path / "hello.py").write_text(HELLO)
    process = gateway_cli("-b", "127.0.0.1:0", "--header", "X-Frame-Options:DENY",
                          "--header", "X-Served-By: a b", "hello:app")
    port = process.wait_listening()
    response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-served-by"] == "a b"
    returncode, output = process.stop()
    assert returncode == 0, output


@pytest.mark.parametrize(("header", "words"), [
    ("X-Frame-Options", ["expected NAME:VALUE"]),
    (":DENY", ["expected NAME:VALUE"]),
    ("X Frame:DENY", ["not a header name"]),
    ("Content-Length:5", ["Content-Length"]),
    ("X-A:\x01", ["control"]),
], ids=["no-colon", "no-name", "space-in-name", "framing-field", "control-in-value"])
def test_bad_flag_is_one_error_line(tmp_path, header, words):
    (tmp_path / "hello.py").write_text(HELLO)
    result = run_cli("-b", "127.0.0.1:0", "--header", header, "hello:app", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: error: invalid --header"), output
    for word in words:
        assert word in lines[0], lines[0]


def test_latin1_value_is_sent_as_is(serve):
    """A latin-1 value (obs-text, RFC 9110 section 5.5) reaches the client byte for byte."""
    with serve(app, headers=["X-Name: caf\xe9"]) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        assert client.read_response().get(b"x-name") == b"caf\xe9"
