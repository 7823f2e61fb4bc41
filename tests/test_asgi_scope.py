"""The HTTP connection scope, as the ASGI spec defines it, seen by a real app over real sockets.

https://asgi.readthedocs.io/en/latest/specs/www.html#http-connection-scope
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import httpx
import pytest
from cryptography import x509
from support import ENGINES, assert_request_target, ipv6_loopback, read_response

pytestmark = pytest.mark.timeout(30)

SCOPE_KEYS = {
    "type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
    "root_path", "headers", "client", "server", "state", "extensions",
}


class Recorder:
    """An ASGI 3 app that keeps every HTTP scope it sees and answers 200 'ok'."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.lifespan_state: dict[str, Any] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.lifespan_state = scope["state"]
                    scope["state"]["base"] = "from-startup"
                    scope["state"]["shared"] = {"visits": 0}
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.scopes.append(scope)
        if scope["path"].endswith("/mutate"):
            scope["state"]["added"] = "by-request"
            del scope["state"]["base"]
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


def raw_request(port: int, request: bytes, context: ssl.SSLContext | None = None
                ) -> tuple[bytes, tuple[str, int]]:
    """Send `request` on a new connection; return the response and the client's address."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        local = sock.getsockname()[:2]
        sock.sendall(request)
        response = read_response(sock)
    return response, local


@pytest.mark.parametrize("engine", ENGINES)
def test_scope_has_exactly_the_spec_keys_and_values(serve, engine):
    app = Recorder()
    with serve(app, http=engine) as server:
        request = (
            b"GET /caf%C3%A9/x%2Fy?q=a%20b&r HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\n"
            b"X-First: 1\r\n"
            b"X-Mixed-Case: Two\r\n"
            b"x-first: 3\r\n"
            b"\r\n"
        )
        response, client = raw_request(server.port, request)
        port = server.port
    assert response.startswith(b"HTTP/1.1 200 ")
    (scope,) = app.scopes
    assert set(scope) == SCOPE_KEYS
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"]["spec_version"], str)
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert_request_target(scope, "GET", "http", "/café/x/y", b"/caf%C3%A9/x%2Fy", b"q=a%20b&r")
    headers = [tuple(pair) for pair in scope["headers"]]
    assert all(type(n) is bytes and type(v) is bytes for n, v in headers)
    assert headers == [
        (b"host", b"127.0.0.1"),
        (b"x-first", b"1"),
        (b"x-mixed-case", b"Two"),
        (b"x-first", b"3"),
    ]
    assert tuple(scope["client"]) == client
    assert tuple(scope["server"]) == ("127.0.0.1", port)
    assert isinstance(scope["state"], dict)
    assert "tls" not in scope["extensions"]


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        (b"/", "/", b"/", b""),
        (b"/search?", "/search", b"/search", b""),
        (b"/a%3Fb?c=d", "/a?b", b"/a%3Fb", b"c=d"),
        (b"/plus+sign?x=+&y=%2B", "/plus+sign", b"/plus+sign", b"x=+&y=%2B"),
        (b"/a%20b/%E2%82%AC", "/a b/€", b"/a%20b/%E2%82%AC", b""),
        (b"/q?a=1?b=2", "/q", b"/q", b"a=1?b=2"),
        # absolute-form, which servers must accept (RFC 9112 section 3.2.2)
        (b"http://127.0.0.1/abs/p?x=1", "/abs/p", b"/abs/p", b"x=1"),
    ],
)
def test_path_raw_path_and_query_string(serve, target, path, raw_path, query):
    app = Recorder()
    with serve(app) as server:
        response, _ = raw_request(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    (scope,) = app.scopes
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (path, raw_path, query)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"])
def test_method(serve, method):
    app = Recorder()
    with serve(app) as server:
        response = httpx.request(method, server.url + "/m", content=b"x" if method != "GET" else None,
                                 timeout=5)
    assert response.status_code == 200
    assert app.scopes[0]["method"] == method


def test_root_path_is_included_in_path_and_raw_path(serve):
    app = Recorder()
    with serve(app, root_path="/api") as server:
        response = httpx.get(server.url + "/items/a%20b?x=1", timeout=5)
    assert response.status_code == 200
    (scope,) = app.scopes
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/a b"
    assert scope["raw_path"] == b"/api/items/a%20b"
    assert scope["query_string"] == b"x=1"


def test_http10_request_has_http_version_1_0(serve):
    app = Recorder()
    with serve(app) as server:
        response, _ = raw_request(server.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert app.scopes[0]["http_version"] == "1.0"


def test_state_is_a_copy_of_the_lifespan_state_per_request(serve):
    app = Recorder()
    with serve(app, lifespan="on") as server, httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/first/mutate").status_code == 200
        assert client.get("/second").status_code == 200
    first, second = app.scopes
    assert first["state"] == {"shared": {"visits": 0}, "added": "by-request"}
    assert second["state"] == {"base": "from-startup", "shared": {"visits": 0}}
    assert app.lifespan_state == {"base": "from-startup", "shared": {"visits": 0}}
    assert first["state"] is not app.lifespan_state
    # a shallow copy: the objects put there at start-up are the same objects
    assert second["state"]["shared"] is app.lifespan_state["shared"]


def test_tls_scope_has_scheme_https_and_tls_extension(serve, certs):
    app = Recorder()
    client_context = certs.client_context()
    with serve(app, certfile=certs.cert_file, keyfile=certs.key_file) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            client = tls.getsockname()[:2]
            cipher_name = tls.cipher()[0]
            version = tls.version()
            for _ in range(2):  # the same facts on every request of a keep-alive connection
                tls.sendall(b"GET /secure HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert read_response(tls).startswith(b"HTTP/1.1 200 ")
        port = server.port
    ids = {c["name"]: c["id"] & 0xFFFF for c in client_context.get_ciphers()}
    with open(certs.cert_file, "rb") as handle:
        leaf = x509.load_pem_x509_certificates(handle.read())[0]
    assert len(app.scopes) == 2
    for scope in app.scopes:
        assert set(scope) == SCOPE_KEYS
        assert scope["scheme"] == "https"
        assert tuple(scope["client"]) == client
        assert tuple(scope["server"]) == ("127.0.0.1", port)
        tls_ext = scope["extensions"]["tls"]
        assert isinstance(tls_ext["server_cert"], str)
        assert x509.load_pem_x509_certificate(tls_ext["server_cert"].encode()) == leaf
        assert tls_ext["client_cert_chain"] == []
        assert tls_ext.get("client_cert_name") is None
        assert tls_ext.get("client_cert_error") is None
        assert tls_ext["tls_version"] == {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}[version]
        assert type(tls_ext["cipher_suite"]) is int
        assert tls_ext["cipher_suite"] == ids[cipher_name]


def test_tls_extension_reports_tls_1_2(serve, certs):
    app = Recorder()
    client_context = certs.client_context()
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        serve(app, certfile=certs.cert_file, keyfile=certs.key_file) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        client_context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher_name = tls.cipher()[0]
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(tls).startswith(b"HTTP/1.1 200 ")
    ids = {c["name"]: c["id"] & 0xFFFF for c in client_context.get_ciphers()}
    tls_ext = app.scopes[0]["extensions"]["tls"]
    assert tls_ext["tls_version"] == 0x0303
    assert tls_ext["cipher_suite"] == ids[cipher_name]


class ASGI2App:
    """The double-callable (ASGI 2) style: a class instantiated with the scope."""

    def __init__(self, scope):
        assert scope["type"] in ("http", "lifespan")
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        body = f"asgi2 {self.scope['method']} {self.scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def asgi2_function(scope):
    """ASGI 2 as a plain function returning the coroutine function."""

    async def instance(receive, send):
        if scope["type"] != "http":
            return
        message = await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"fn:" + message["body"]})

    return instance


def test_asgi2_class_app(serve):
    with serve(ASGI2App) as server:
        response = httpx.get(server.url + "/two", timeout=5)
    assert response.status_code == 200
    assert response.text == "asgi2 GET /two"


def test_asgi2_function_app(serve):
    with serve(asgi2_function) as server:
        response = httpx.post(server.url + "/", content=b"payload", timeout=5)
    assert response.status_code == 201
    assert response.text == "fn:payload"


def test_factory_builds_the_app(serve):
    calls = []

    def make_app():
        calls.append("made")

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"from factory"})

        return app

    with serve(make_app, factory=True) as server:
        response = httpx.get(server.url + "/", timeout=5)
        second = httpx.get(server.url + "/", timeout=5)
    assert response.text == "from factory"
    assert second.text == "from factory"
    assert calls == ["made"]


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_client_and_server_on_ipv6(serve):
    app = Recorder()
    with serve(app, bind=["[::1]:0"]) as server:
        with socket.create_connection(("::1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            client = sock.getsockname()[:2]
        port = server.port
    (scope,) = app.scopes
    assert tuple(scope["server"]) == ("::1", port)
    assert tuple(scope["client"]) == client
