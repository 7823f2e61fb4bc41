"""`gateway` as a process: graceful stop on SIGTERM/SIGINT, start-up lines, the access log."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import GatewayProcess
from support import ipv6_loopback, read_response, read_until_closed

pytestmark = pytest.mark.timeout(30)

APP = '''
import asyncio
import os

EVENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.log")


def log(event):
    with open(EVENTS, "a") as handle:
        handle.write(event + "\\n")


async def respond(send, status, body):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                log("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/slow":
        log("slow start")
        await asyncio.sleep(1.0)
        log("slow end")
        await respond(send, 200, b"slow done")
    elif path == "/forever":
        log("forever start")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log("forever cancelled")
            raise
    elif path == "/missing":
        await respond(send, 404, b"not here")
    elif path == "/error":
        raise RuntimeError("deliberate failure")
    else:
        while (await receive()).get("more_body"):
            pass
        await respond(send, 200, b"hello")
'''

LISTENING = re.compile(r"listening on (https?)://(\S+):(\d+) \(([^)]*)\)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lifecycle_app.py").write_text(APP)
    return tmp_path


def events(project: Path) -> list[str]:
    path = project / "events.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_for_event(project: Path, event: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while event not in events(project):
        if time.monotonic() > deadline:
            raise AssertionError(f"{event!r} not in {events(project)}")
        time.sleep(0.01)


def refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait_refused(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not refused(port):
        if time.monotonic() > deadline:
            raise AssertionError("still accepting connections")
        time.sleep(0.02)


def listening_lines(process, count: int, timeout: float = 10.0) -> list[re.Match[str]]:
    """The first `count` 'listening on' lines of a started gateway."""
    found = [m for m in map(LISTENING.search, process.lines) if m]
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        line = process.process.stdout.readline()
        if not line:
            break
        process.lines.append(line)
        match = LISTENING.search(line)
        if match:
            found.append(match)
    assert len(found) == count, "".join(process.lines)
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_request_in_flight_completes_then_exit_0(project, gateway_cli, signum):
    process = gateway_cli("-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(httpx.get, f"http://127.0.0.1:{port}/slow", timeout=10)
        wait_for_event(project, "slow start")
        process.signal(signum)
        response = future.result(timeout=10)
    assert response.status_code == 200
    assert response.text == "slow done"
    assert response.headers.get("connection") == "close"
    assert process.process.wait(timeout=10) == 0
    assert events(project) == ["startup", "slow start", "slow end", "shutdown"]
    output = process.rest()
    assert "Traceback" not in "".join(process.lines)
    assert "ERROR" not in "".join(process.lines) + output


def test_after_signal_idle_connections_close_and_new_ones_are_refused(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle, \
            ThreadPoolExecutor(1) as pool:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle).endswith(b"hello")
        future = pool.submit(httpx.get, f"http://127.0.0.1:{port}/slow", timeout=10)
        wait_for_event(project, "slow start")
        process.signal(signal.SIGTERM)
        idle.settimeout(0.8)  # well before the slow request ends
        assert read_until_closed(idle) == b""
        wait_refused(port, timeout=0.5)
        assert not future.done()
        assert future.result(timeout=10).status_code == 200
    assert process.process.wait(timeout=10) == 0


def test_a_connection_made_before_the_signal_is_answered_once_and_a_silent_one_closed(
        project, gateway_cli):
    """The race of a graceful stop (and of a worker retiring on SIGHUP): a client connected
    but its request has not been read yet. It is answered, not dropped."""
    process = gateway_cli("-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as silent, \
            ThreadPoolExecutor(1) as pool:
        future = pool.submit(httpx.get, f"http://127.0.0.1:{port}/slow", timeout=10)
        wait_for_event(project, "slow start")  # holds the stop open while `fresh` is served
        process.signal(signal.SIGTERM)
        time.sleep(0.3)
        fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_until_closed(fresh)
        assert response.startswith(b"HTTP/1.1 200") and b"connection: close" in response.lower()
        began = time.monotonic()
        silent.settimeout(5)
        assert read_until_closed(silent) == b""
        assert time.monotonic() - began < 2.5
        assert future.result(timeout=10).status_code == 200
    assert process.process.wait(timeout=10) == 0


@contextlib.contextmanager
def request_that_never_finishes(project: Path, gateway_cli, graceful_timeout: str
                                ) -> Iterator[tuple[GatewayProcess, socket.socket]]:
    """A gateway started with `--graceful-timeout`, and a connection whose request (/forever)
    the app is busy with: the process and the socket."""
    process = gateway_cli("--graceful-timeout", graceful_timeout, "-b", "127.0.0.1:0",
                          "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for_event(project, "forever start")
        yield process, sock


def test_graceful_timeout_closes_requests_that_never_finish(project, gateway_cli):
    with request_that_never_finishes(project, gateway_cli, "1") as (process, sock):
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        data = read_until_closed(sock)
        closed_after = time.monotonic() - started
    returncode = process.process.wait(timeout=10)
    exited_after = time.monotonic() - started
    assert data == b""
    assert 0.9 <= closed_after <= 2.5
    assert exited_after <= 3.0
    assert returncode == 0
    assert events(project) == ["startup", "forever start", "forever cancelled", "shutdown"]


def test_second_signal_stops_without_waiting(project, gateway_cli):
    with request_that_never_finishes(project, gateway_cli, "30") as (process, _):
        started = time.monotonic()
        process.signal(signal.SIGINT)
        time.sleep(0.2)
        process.signal(signal.SIGINT)
        returncode = process.process.wait(timeout=10)
    assert time.monotonic() - started < 2.0
    assert returncode == 0
    assert events(project)[-1] == "shutdown"


def test_one_line_per_listener_with_url_and_protocols(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "lifecycle_app:app",
                          cwd=project)
    process.wait_listening()
    lines = listening_lines(process, 2)
    ports = {int(m.group(3)) for m in lines}
    assert len(ports) == 2
    for match in lines:
        assert match.group(1) == "http"
        assert match.group(2) == "127.0.0.1"
        assert match.group(4) == "http/1.1, h2c"
    for port in ports:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "hello"
    assert process.stop()[0] == 0


def test_tls_listener_line_says_https(project, gateway_cli, certs):
    process = gateway_cli("--certfile", certs.cert_file, "--keyfile", certs.key_file,
                          "-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    process.wait_listening()
    (match,) = listening_lines(process, 1)
    assert match.group(1) == "https"
    assert match.group(4) == "h2, http/1.1"
    response = httpx.get(f"https://localhost:{match.group(3)}/", verify=certs.client_context(),
                         timeout=5)
    assert response.text == "hello"
    assert process.stop()[0] == 0


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_listener(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "-b", "[::1]:0", "lifecycle_app:app", cwd=project)
    process.wait_listening()
    lines = listening_lines(process, 2)
    hosts = {m.group(2): int(m.group(3)) for m in lines}
    assert set(hosts) == {"127.0.0.1", "[::1]"}
    assert httpx.get(f"http://[::1]:{hosts['[::1]']}/", timeout=5).text == "hello"
    assert process.stop()[0] == 0


def _requests_with_client_ports(port: int) -> list[tuple[int, bytes]]:
    sent = []
    for request in (
        b"GET /hello?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            read_response(sock)
            sent.append((sock.getsockname()[1], request))
    return sent


def test_access_log_line_per_response(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    (hello, submit, missing) = _requests_with_client_ports(port)
    returncode, output = process.stop()
    assert returncode == 0

    def line_for(request_line: str) -> str:
        lines = [line for line in output.splitlines() if request_line in line]
        assert len(lines) == 1, output
        return lines[0]

    for (client_port, _), request_line, status, size in (
        (hello, '"GET /hello?x=1 HTTP/1.1"', 200, len(b"hello")),
        (submit, '"POST /submit HTTP/1.1"', 200, len(b"hello")),
        (missing, '"GET /missing HTTP/1.1"', 404, len(b"not here")),
    ):
        line = line_for(request_line)
        assert f"127.0.0.1:{client_port}" in line
        after = line.split(request_line, 1)[1]
        assert re.match(rf"\s+{status}\s+{size}\s*B?\s", after), line
        assert re.search(r"\d+(\.\d+)?\s*(ms|s)\b", after), line


def test_no_access_log(project, gateway_cli):
    process = gateway_cli("--no-access-log", "-b", "127.0.0.1:0", "lifecycle_app:app",
                          cwd=project)
    port = process.wait_listening()
    _requests_with_client_ports(port)
    returncode, output = process.stop()
    assert returncode == 0
    assert "/hello" not in output and "/submit" not in output and "/missing" not in output
    assert "listening on" in output


def test_app_exception_logs_one_traceback_and_a_500_access_line(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "lifecycle_app:app", cwd=project)
    port = process.wait_listening()
    response = httpx.get(f"http://127.0.0.1:{port}/error", timeout=5)
    assert response.status_code == 500
    returncode, output = process.stop()
    assert returncode == 0
    assert output.count("Traceback") == 1, output
    assert "RuntimeError: deliberate failure" in output
    assert re.search(r'"GET /error HTTP/1.1"\s+500\b', output), output
