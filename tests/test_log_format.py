"""`--log-format json` as `gateway` processes write it (one JSON object per line for access and
error lines alike, the access line's facts and the failing request's connection as keys, never
coloured, whole lines from workers sharing stderr, and a JSON formatter a --log-config file
names), and error lines that name the connection in text."""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from h1_client import RawClient
from process_support import Tree
from support import read_response

pytestmark = pytest.mark.timeout(60)

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/error":
        raise RuntimeError("deliberate failure")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""
ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jsonapp.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def raw_get(port: int, target: str, *headers: str) -> int:
    """GET `target` over a new connection; the client's port."""
    lines = [f"GET {target} HTTP/1.1", "Host: x", *headers, "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode())
        read_response(sock)
        return sock.getsockname()[1]


def parse_lines(output: str) -> list[dict]:
    """Every line of the output as JSON; fails on a line that is not."""
    objects = []
    for line in output.splitlines():
        try:
            objects.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n{output}") from None
    return objects


def test_json_lines_for_access_and_errors(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "--log-format", "json", "--use-colors", "jsonapp:app",
                          cwd=project)
    port = process.wait_listening()
    client_port = raw_get(port, "/hello?x=1", "User-Agent: raw-test", "Referer: http://ref/")
    error_port = raw_get(port, "/error")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{port}/two").status_code == 200
        assert client.get(f"http://127.0.0.1:{port}/error").status_code == 500
    with RawClient(port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        assert raw.read_response().status == 400
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "\x1b[" not in output  # --use-colors does not colour JSON
    lines = parse_lines(output)
    for line in lines:
        assert {"time", "level", "logger", "message", "pid"} <= set(line), line
        assert ISO_UTC_MS.fullmatch(line["time"]), line
    now = datetime.datetime.now(datetime.timezone.utc)
    logged = datetime.datetime.strptime(lines[-1]["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(now - logged.replace(tzinfo=datetime.timezone.utc)) < datetime.timedelta(minutes=1)
    pid = process.process.pid
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert [line["status"] for line in access] == [200, 500, 200, 500, 400], access
    first = access[0]
    assert first["message"] == f'127.0.0.1:{client_port} - "GET /hello?x=1 HTTP/1.1" 200 5B ' \
                               f'{first["duration_ms"]:.1f}ms'
    del first["time"], first["duration_ms"]
    assert first == {
        "level": "INFO", "logger": "gateway.access", "message": first["message"], "pid": pid,
        "type": "http", "client": f"127.0.0.1:{client_port}", "method": "GET", "path": "/hello",
        "query": "x=1", "protocol": "HTTP/1.1", "http_version": "1.1", "status": 200, "bytes": 5,
        "stream_id": None, "user_agent": "raw-test", "referer": "http://ref/",
    }
    h2 = access[2]
    assert (h2["protocol"], h2["http_version"], h2["stream_id"], h2["path"]) == ("HTTP/2", "2", 1, "/two")
    assert access[3]["stream_id"] == 3
    assert access[4]["client"].startswith("127.0.0.1:") and access[4]["method"] is None

    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 2, errors
    for error in errors:
        assert error["logger"] == "gateway.error" and error["pid"] == pid
        assert error["exc_info"].startswith("Traceback (most recent call last):")
        assert error["exc_info"].rstrip().endswith("RuntimeError: deliberate failure")
        assert (error["method"], error["path"]) == ("GET", "/error")
    assert errors[0]["client"] == f"127.0.0.1:{error_port}"
    assert (errors[0]["protocol"], errors[0]["stream_id"]) == ("HTTP/1.1", None)
    assert (errors[1]["protocol"], errors[1]["stream_id"]) == ("HTTP/2", 3)
    assert errors[1]["message"] == \
        f"Exception in ASGI app (GET /error; {errors[1]['client']} HTTP/2 stream 3)"


def test_json_from_the_environment(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "jsonapp:app", cwd=project,
                          env={"GATEWAY_LOG_FORMAT": "json"})
    port = process.wait_listening()
    raw_get(port, "/")
    returncode, output = process.stop()
    assert returncode == 0, output
    assert [line["status"] for line in parse_lines(output) if line["logger"] == "gateway.access"] == [200]


def test_workers_write_whole_lines(project):
    """Two workers and their supervisor share one pipe; long lines, written at once by
    several clients, still arrive one JSON object per line."""
    tree = Tree(["-b", "127.0.0.1:0", "--workers", "2", "--log-format", "json", "jsonapp:app"],
                project)
    try:
        tree.ready_workers(2)
        port = tree.port()
        agent = "a" * 3000  # a line near PIPE_BUF

        def client() -> None:
            with httpx.Client(timeout=10, headers={"user-agent": agent}) as session:
                for index in range(40):
                    assert session.get(f"http://127.0.0.1:{port}/n{index}").status_code == 200

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert tree.stop() == 0
    finally:
        tree.kill()
    lines = parse_lines(tree.text)
    access = [line for line in lines if line["logger"] == "gateway.access"]
    assert len(access) == 240
    assert all(line["user_agent"] == agent for line in access)
    assert {line["pid"] for line in lines} >= {tree.process.pid} | {line["pid"] for line in access}


def test_text_error_lines_name_the_connection(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "jsonapp:app", cwd=project)
    port = process.wait_listening()
    client_port = raw_get(port, "/error")
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{port}/error").status_code == 500
    returncode, output = process.stop()
    assert returncode == 0, output
    assert f"ERROR Exception in ASGI app (GET /error; 127.0.0.1:{client_port} HTTP/1.1)\n" in output
    assert re.search(r"ERROR Exception in ASGI app \(GET /error; 127\.0\.0\.1:\d+ HTTP/2 stream 1\)\n",
                     output), output


def test_json_formatter_in_a_log_config_file(project, gateway_cli):
    (project / "logging.json").write_text(json.dumps({
        "version": 1,
        "formatters": {"json": {"class": "gateway.logs.JSONFormatter"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
        "loggers": {"gateway.access": {"handlers": ["out"], "level": "INFO", "propagate": False}},
    }))
    process = gateway_cli("-b", "127.0.0.1:0", "--log-config", "logging.json", "jsonapp:app",
                          cwd=project)
    port = process.wait_listening()
    raw_get(port, "/configured")
    returncode, output = process.stop()
    assert returncode == 0, output
    [line] = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert (line["path"], line["status"], line["logger"]) == ("/configured", 200, "gateway.access")
