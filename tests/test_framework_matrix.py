"""The example apps of examples/frameworks/ (Starlette, FastAPI, Django with Channels, Quart,
Litestar), each served by one `gateway` process with a TLS listener and a plain one, and
checked on every protocol a client can pick: HTTP/1.1 over TLS, HTTP/2 over TLS (ALPN) and h2c
with prior knowledge. Each framework gets the same checks: a JSON route showing the lifespan's
startup state, a streamed response, a WebSocket echo (wss:// over HTTP/1.1 with `websockets`,
RFC 8441 over h2 and h2c), and the lifespan's shutdown after SIGTERM. test_frameworks.py looks
closer at Starlette and FastAPI in-process; this module is the framework x protocol matrix."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import ROOT, Certs
from h2_client import client_tls_context
from process_support import Tree
from ws.h2_ws_client import H2WebSocket, ws_connection
from ws.ws_support import ws_connect

from examples.frameworks.fastapi_app import REPORT_SECONDS

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Framework:
    app: str
    lifespan: bool = True  # Django has no ASGI lifespan: gateway serves it without one


FRAMEWORKS = {
    "starlette": Framework("examples.frameworks.starlette_app:app"),
    "fastapi": Framework("examples.frameworks.fastapi_app:app"),
    "django": Framework("examples.frameworks.django_app.asgi:application", lifespan=False),
    "quart": Framework("examples.frameworks.quart_app:app"),
    "litestar": Framework("examples.frameworks.litestar_app:app"),
}
# What the client asks for, and the HTTP version httpx must then report.
PROTOCOLS = {"tls-http1.1": "HTTP/1.1", "tls-h2": "HTTP/2", "h2c": "HTTP/2"}

every_protocol = pytest.mark.parametrize("protocol", PROTOCOLS)
every_framework = pytest.mark.parametrize("framework", FRAMEWORKS, scope="module")


def gateway(framework: str, certs) -> Tree:
    return Tree(["--certfile", certs.cert_file, "--keyfile", certs.key_file, "-b", "127.0.0.1:0",
                 "--insecure-bind", "127.0.0.1:0", FRAMEWORKS[framework].app], cwd=ROOT)


@dataclass
class Served:
    tree: Tree
    tls_port: int
    plain_port: int
    certs: Certs

    def client(self, protocol: str) -> httpx.Client:
        """An httpx client that speaks `protocol` to the matching listener."""
        if protocol == "h2c":
            return httpx.Client(base_url=f"http://127.0.0.1:{self.plain_port}", http1=False,
                                http2=True, timeout=5)
        return httpx.Client(base_url=f"https://localhost:{self.tls_port}", http2=protocol == "tls-h2",
                            verify=self.certs.client_context(), timeout=5)


@pytest.fixture(scope="module")
def served(framework: str, certs) -> Iterator[Served]:
    tree = gateway(framework, certs)
    try:
        tls_port = int(tree.wait_for(r"listening on https://127\.0\.0\.1:(\d+)")[0].group(1))
        plain_port = int(tree.wait_for(r"listening on http://127\.0\.0\.1:(\d+)")[0].group(1))
        yield Served(tree, tls_port, plain_port, certs)
        assert tree.stop(15) == 0
    finally:
        tree.kill()
    problems = [line for line in tree.lines if re.search(r" (ERROR|WARNING) |Traceback", line)]
    assert not problems, f"{framework} under gateway logged:\n{tree.text}"


@every_protocol
@every_framework
def test_json_route_with_lifespan_state(served: Served, framework: str, protocol: str) -> None:
    with served.client(protocol) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert response.http_version == PROTOCOLS[protocol]
    assert response.headers["content-type"].startswith("application/json")
    expected = {"framework": framework}
    if FRAMEWORKS[framework].lifespan:
        expected["started"] = framework
    assert response.json() == expected


@every_protocol
@every_framework
def test_streamed_response_arrives_in_order(served: Served, framework: str, protocol: str) -> None:
    with served.client(protocol) as client, client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.http_version == PROTOCOLS[protocol]
        if protocol == "tls-http1.1":
            assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"chunk {number}" for number in range(5)]


MESSAGES = ("hello", "wörld " * 1000, "🙂")


@every_protocol
@every_framework
def test_websocket_echo(served: Served, framework: str, protocol: str) -> None:
    if protocol == "tls-http1.1":
        url = f"wss://localhost:{served.tls_port}/ws"
        with ws_connect(url, ssl=served.certs.client_context()) as websocket:
            for message in MESSAGES:
                websocket.send(message)
                assert websocket.recv(timeout=5) == message
            websocket.close()
        assert websocket.close_code == 1000
        return
    context = client_tls_context(served.certs.ca_file) if protocol == "tls-h2" else None
    port = served.tls_port if protocol == "tls-h2" else served.plain_port
    with ws_connection(port, context) as client:
        websocket = H2WebSocket.connect(client, "/ws")
        for message in MESSAGES:
            websocket.send_text(message)
            assert websocket.receive() == message
        websocket.send_close(1000)
        assert websocket.receive_close().code == 1000
        assert websocket.wait_stream_end().reset is None


@pytest.mark.parametrize("framework", [name for name, it in FRAMEWORKS.items() if not it.lifespan],
                         scope="module")
def test_no_lifespan_is_served_without_one(served: Served, framework: str) -> None:
    served.tree.wait_for("does not support the ASGI lifespan protocol")


@every_protocol
@pytest.mark.parametrize("framework", ["fastapi"], scope="module")
def test_fastapi_background_task_runs_after_the_response(served: Served, framework: str,
                                                        protocol: str) -> None:
    with served.client(protocol) as client:
        assert protocol not in client.get("/reports").json()  # the connection is open before timing
        started = time.monotonic()
        response = client.post("/reports", params={"name": protocol})
        answered = time.monotonic() - started
        assert (response.status_code, response.json()) == (202, {"queued": protocol})
        assert answered < REPORT_SECONDS, f"the response waited {answered:.2f}s for its background task"
        deadline = started + 5
        while protocol not in client.get("/reports").json():
            assert time.monotonic() < deadline, "the background task never wrote its report"
            time.sleep(0.05)


@pytest.mark.parametrize("framework", [name for name, it in FRAMEWORKS.items() if it.lifespan])
def test_lifespan_shutdown_runs_on_sigterm(framework: str, certs) -> None:
    tree = gateway(framework, certs)
    try:
        port = int(tree.wait_for(r"listening on http://127\.0\.0\.1:(\d+)")[0].group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()["started"] == framework
        tree.signal(signal.SIGTERM)
        assert tree.wait(15) == 0
    finally:
        tree.kill()
    lines = tree.text.splitlines()
    assert f"{framework} app: shut down" in lines
    assert lines.index(f"{framework} app: shut down") < next(
        number for number, line in enumerate(lines) if line.endswith(" stopped"))
