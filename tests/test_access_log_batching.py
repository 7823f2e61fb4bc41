"""Access lines written in batches by gateway's own handler (log_lines.py), as `gateway`
processes write them: a line shows within a second with no other traffic, none is lost when a
server or its workers stop right after a burst of requests, an error line never overtakes an
access line made before it, and logging configured by the user still sees every line."""

from __future__ import annotations

import json
import re
import signal
import socket
import textwrap
import time
from pathlib import Path

import pytest
from process_support import Tree
from support import free_port, wait_until

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
ACCESS_LINE = r'INFO 127\.0\.0\.1:\d+ - "GET /n(\d+) HTTP/1\.1" 200 5B [\d.]+ms'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "batchapp.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture
def start(project: Path):
    trees: list[Tree] = []

    def start(*args: str, port: int = 0) -> Tree:
        tree = Tree(["-b", f"127.0.0.1:{port}", *args, "batchapp:app"], project)
        trees.append(tree)
        return tree

    yield start
    for tree in trees:
        tree.kill()


def pipelined_gets(port: int, first: int, count: int) -> None:
    """`count` GET requests pipelined on one connection; returns once every response is in."""
    requests = b"".join(b"GET /n%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(first, first + count))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(requests)
        received = b""
        while received.count(b"hello") < count:
            data = sock.recv(65536)
            assert data, f"closed after {received.count(b'hello')} responses"
            received += data


def connectable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def access_numbers(text: str) -> list[int]:
    return [int(match.group(1)) for match in re.finditer(ACCESS_LINE, text)]


def test_a_lone_line_shows_within_a_second(start):
    tree = start()
    port = tree.port()
    pipelined_gets(port, 0, 1)
    began = time.monotonic()
    tree.wait_for(ACCESS_LINE, timeout=1.0)
    assert time.monotonic() - began < 1.0
    # and again after a quiet spell, when nothing else is written meanwhile
    time.sleep(0.3)
    pipelined_gets(port, 1, 1)
    tree.wait_for(ACCESS_LINE, count=2, timeout=1.0)


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet-error-log"])
def test_no_line_lost_when_stopped_right_after_a_burst(start, project, quiet):
    """Quiet: no error line of gateway's own comes after the last access lines to push them
    out, so they leave with the handler's flush at exit."""
    args: list[str] = []
    port = 0
    if quiet:
        (project / "logging.json").write_text(json.dumps({
            "version": 1,
            "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
            "loggers": {"gateway.error": {"handlers": ["err"], "level": "ERROR", "propagate": False}},
        }))
        args = ["--log-config", "logging.json"]
        port = free_port()
    tree = start(*args, port=port)
    if quiet:  # no `listening on` line to wait for
        assert wait_until(lambda: connectable(port), timeout=15)
    else:
        port = tree.port()
    for batch in range(10):
        pipelined_gets(port, batch * 300, 300)
    tree.signal(signal.SIGTERM)
    assert tree.wait() == 0
    assert sorted(access_numbers(tree.text)) == list(range(3000))


def test_no_line_lost_when_workers_stop(start):
    tree = start("--workers", "2")
    tree.ready_workers(2)
    port = tree.port()
    for batch in range(20):  # one connection each, so both workers serve some
        pipelined_gets(port, batch * 100, 100)
    tree.signal(signal.SIGTERM)
    assert tree.wait() == 0
    assert sorted(access_numbers(tree.text)) == list(range(2000))


def test_an_error_line_comes_after_the_access_lines_before_it(start):
    tree = start()
    port = tree.port()
    pipelined_gets(port, 0, 50)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /error HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 500 ")
    tree.wait_for("deliberate failure")
    text = tree.text
    assert access_numbers(text) == list(range(50))
    assert text.index("ERROR Exception in ASGI app") > text.index('"GET /n49 HTTP/1.1"')


def test_logging_configured_by_the_user_sees_every_line(start, project):
    """A handler and a filter of the user's own take the standard path, record by record."""
    (project / "logging.json").write_text(json.dumps({
        "version": 1,
        "filters": {"drop_n1": {"()": "batchfilter.DropN1"}},
        "formatters": {"plain": {"format": "MINE %(name)s %(message)s"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stderr", "filters": ["drop_n1"]}},
        "loggers": {"gateway.access": {"handlers": ["err"], "level": "INFO", "propagate": False}},
    }))
    (project / "batchfilter.py").write_text(textwrap.dedent("""
        import logging

        class DropN1(logging.Filter):
            def filter(self, record):
                return '"GET /n1 ' not in record.getMessage()
    """))
    tree = start("--log-config", "logging.json")
    port = tree.port()
    pipelined_gets(port, 0, 3)
    tree.wait_for(r"MINE gateway\.access .*GET /n2 ", timeout=5)
    assert tree.stop() == 0
    lines = [line for line in tree.text.splitlines() if line.startswith("MINE gateway.access")]
    assert len(lines) == 2 and '"GET /n0 ' in lines[0] and '"GET /n2 ' in lines[1], tree.text
