"""--metrics-bind: real traffic, then real scrapes of the Prometheus text, /livez and /readyz,
with one process and with a supervisor over workers."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from prometheus_client.parser import text_string_to_metric_families
from ws.ws_support import ws_connect

pytestmark = pytest.mark.timeout(90)

APP = """
import asyncio, os, sys


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})
    if scope["path"] == "/slow":
        await asyncio.sleep(2.0)
    if scope["path"] == "/modules":
        loaded = [name for name in ("prometheus_client", "gateway.metrics") if name in sys.modules]
        body = ",".join(loaded).encode() or b"none"
    else:
        body = str(os.getpid()).encode()
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "metrics_app.py").write_text(textwrap.dedent(APP))
    return tmp_path



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_value(port: int, name: str, at_least: float, timeout: float = 5.0, **labels: str) -> dict:
    """The counters reach the scrape within a second (the server's tick)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if value(samples, name, **labels) >= at_least or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def status(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})
    while (await receive()).get("more_body"):
        pass
    code = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": code, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_scrape_shows_h1_h2_websocket_and_tls_traffic(serve, certs):
    with serve(app, certfile=certs.cert_file, keyfile=certs.key_file,
               metrics_bind="127.0.0.1:0") as server:
        port = server.server.metrics.sock.getsockname()[1]
        url = server.url
        with httpx.Client(verify=certs.client_context()) as client:
            for _ in range(3):
                assert client.get(url + "/").status_code == 200
            assert client.post(url + "/", content=b"x" * 1000).status_code == 200
            assert client.request("TRACE", url + "/").status_code == 200
        with httpx.Client(verify=certs.client_context(), http2=True) as client:
            for _ in range(2):
                response = client.get(url + "/")
                assert response.http_version == "HTTP/2"
            assert client.get(url + "/missing").status_code == 404
        context = certs.client_context()
        with ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=context) as ws:
            for text in ("one", "two", "three"):
                ws.send(text)
                assert ws.recv() == text
            during = wait_for_value(port, "gateway_websocket_sessions_open", 1)
            assert value(during, "gateway_websocket_sessions_open") == 1
            assert value(during, "gateway_connections", protocol="websocket") == 1
        # A client that is no TLS client at all, answered 400: a failed handshake all the same.
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            raw.settimeout(5)
            assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
        samples = wait_for_value(port, "gateway_tls_handshake_failures_total", 1, reason="protocol_error")

    h1, h2 = "http/1.1", "h2"
    assert value(samples, "gateway_requests_total", protocol=h1, method="GET", status="2xx") == 3
    assert value(samples, "gateway_requests_total", protocol=h1, method="POST", status="2xx") == 1
    assert value(samples, "gateway_requests_total", protocol=h1, method="other", status="2xx") == 1
    assert value(samples, "gateway_requests_total", protocol=h2, method="GET", status="2xx") == 2
    assert value(samples, "gateway_requests_total", protocol=h2, method="GET", status="4xx") == 1
    # The WebSocket handshake is an HTTP/1.1 request answered 101.
    assert value(samples, "gateway_requests_total", protocol=h1, method="GET", status="1xx") == 1
    assert value(samples, "gateway_request_duration_seconds_count") == 9
    assert value(samples, "gateway_request_duration_seconds_bucket", le="+Inf") == 9
    assert 0 < value(samples, "gateway_request_duration_seconds_sum") < 9
    assert value(samples, "gateway_h2_streams_total") == 3
    assert value(samples, "gateway_websocket_sessions_total") == 1
    assert value(samples, "gateway_websocket_sessions_open") == 0
    assert value(samples, "gateway_websocket_messages_total", direction="in") == 3
    assert value(samples, "gateway_websocket_messages_total", direction="out") == 3
    assert value(samples, "gateway_tls_handshakes_total") == 3  # h1, h2 and the WebSocket
    assert value(samples, "gateway_tls_handshake_failures_total", reason="protocol_error") == 1
    assert value(samples, "gateway_received_bytes_total") > 1000
    assert value(samples, "gateway_sent_bytes_total") > 0
    assert value(samples, "gateway_requests_in_flight") == 0


def test_the_listener_answers_three_paths_and_bounds_its_clients(serve):
    with serve(app, metrics_bind="127.0.0.1:0", metrics_timeout=0.5) as server:
        port = server.server.metrics.sock.getsockname()[1]
        assert status(port, "/livez") == 200
        assert status(port, "/readyz") == 200
        assert status(port, "/") == 404
        assert status(port, "/metrics/x") == 404
        assert httpx.post(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"GET /metrics HTTP/1.1\r\nx: " + b"a" * 20000 + b"\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400 ")
        with socket.create_connection(("127.0.0.1", port)) as raw:  # says nothing: closed
            raw.settimeout(5)
            began = time.monotonic()
            assert raw.recv(100) == b""
            assert time.monotonic() - began < 3


def test_metrics_off_means_no_listener_and_no_prometheus_import(serve, gateway_cli, project):
    with serve(app) as server:
        assert server.server.metrics is None
        assert server.server.state.tally is None
    process = gateway_cli("metrics_app:app", "-b", "127.0.0.1:0", cwd=project)
    port = process.wait_listening()
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/modules").text == "none"
    code, output = process.stop()
    assert code == 0
    assert "metrics on" not in output


def test_readyz_turns_503_at_sigterm_while_a_slow_request_drains(gateway_cli, project):
    metrics_port = free_port()
    process = gateway_cli("metrics_app:app", "-b", "127.0.0.1:0",
                          "--metrics-bind", f"127.0.0.1:{metrics_port}", cwd=project)
    port = process.wait_listening()
    assert httpx.get(f"http://127.0.0.1:{port}/modules").text == "prometheus_client,gateway.metrics"
    assert status(metrics_port, "/readyz") == 200
    slow: list[int] = []
    thread = threading.Thread(
        target=lambda: slow.append(httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10).status_code)
    )
    thread.start()
    time.sleep(0.3)
    process.signal(signal.SIGTERM)
    time.sleep(0.2)
    assert status(metrics_port, "/readyz") == 503
    assert status(metrics_port, "/livez") == 200
    assert thread.is_alive()  # still draining
    thread.join(10)
    assert slow == [200]
    code, _ = process.stop()
    assert code == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/livez", timeout=2)


def test_one_scrape_sums_the_workers_and_counts_a_killed_one(start):
    metrics_port = free_port()
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "--metrics-bind",
                 f"127.0.0.1:{metrics_port}", "metrics_app:app")
    port = tree.port()
    workers = dict(tree.ready_workers(2))
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    assert directory is None  # the supervisor's environment, not ours
    served = set()
    total = 0
    while len(served) < 2 or total < 20:
        served.add(int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text))
        total += 1
        assert total < 500
    assert served == set(workers.values())
    samples = wait_for_value(metrics_port, "gateway_requests_total", total, protocol="http/1.1",
                             method="GET", status="2xx")
    assert value(samples, "gateway_requests_total", protocol="http/1.1", method="GET", status="2xx") == total
    assert value(samples, "gateway_worker_restarts_total", reason="died") == 0

    victim = workers[1]
    os.kill(victim, signal.SIGKILL)
    replacement = tree.ready_workers(3)[2]
    assert replacement[0] == 1
    samples = wait_for_value(metrics_port, "gateway_worker_restarts_total", 1, reason="died")
    assert value(samples, "gateway_worker_restarts_total", reason="died") == 1
    # What the dead worker counted is still in the sum.
    assert value(samples, "gateway_requests_total", protocol="http/1.1", method="GET", status="2xx") == total
    assert status(metrics_port, "/readyz") == 200

    slow = threading.Thread(target=lambda: httpx.get(f"http://127.0.0.1:{port}/slow", timeout=10))
    slow.start()
    time.sleep(0.3)
    tree.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert status(metrics_port, "/readyz") == 503
    assert status(metrics_port, "/livez") == 200
    slow.join(10)
    assert tree.wait() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/livez", timeout=2)
    directories = [line for line in tree.text.splitlines() if "gateway-metrics-" in line]
    assert not directories


def test_a_bad_or_busy_metrics_bind_is_one_line(project):
    result = run_cli("metrics_app:app", "--metrics-bind", "nowhere", cwd=project)
    assert result.returncode == 2
    assert "invalid --metrics-bind 'nowhere'" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for workers in ("1", "2"):
            result = run_cli("metrics_app:app", "-b", "127.0.0.1:0", "--workers", workers,
                             "--metrics-bind", f"127.0.0.1:{busy}", cwd=project)
            assert result.returncode == 2, result.stderr
            assert f"cannot listen on --metrics-bind 127.0.0.1:{busy}" in result.stderr


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_handshake_timeouts_are_counted(serve, certs, loop):
    with serve(app, certfile=certs.cert_file, keyfile=certs.key_file, tls_handshake_timeout=0.5,
               loop=loop, metrics_bind="127.0.0.1:0") as server:
        port = server.server.metrics.sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", server.port)):  # says nothing
            samples = wait_for_value(port, "gateway_tls_handshake_failures_total", 1, reason="timeout")
        assert value(samples, "gateway_tls_handshake_failures_total", reason="timeout") == 1
        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # starts, then stalls
            raw.sendall(b"\x16\x03\x01\x02\x00\x01")
            samples = wait_for_value(port, "gateway_tls_handshake_failures_total", 2, reason="timeout")
        assert value(samples, "gateway_tls_handshake_failures_total", reason="timeout") == 2
        assert value(samples, "gateway_tls_handshake_failures_total", reason="client_closed") == 0
        context = ssl.create_default_context(cafile=certs.ca_file)
        with socket.create_connection(("127.0.0.1", server.port)) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
        samples = wait_for_value(port, "gateway_tls_handshakes_total", 1)
        assert value(samples, "gateway_tls_handshakes_total") == 1


def test_a_recycled_worker_is_counted(start):
    metrics_port = free_port()
    tree = start("--max-requests", "3", "-b", "127.0.0.1:0", "--metrics-bind",
                 f"127.0.0.1:{metrics_port}", "metrics_app:app")
    port = tree.port()
    tree.ready_workers(1)
    for _ in range(5):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    tree.ready_workers(2)  # the replacement
    samples = wait_for_value(metrics_port, "gateway_worker_restarts_total", 1, reason="recycled")
    assert value(samples, "gateway_worker_restarts_total", reason="recycled") == 1
    assert value(samples, "gateway_worker_restarts_total", reason="died") == 0
    assert tree.stop() == 0
