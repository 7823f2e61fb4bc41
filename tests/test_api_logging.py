"""`gateway.serve()` from a program of its own logs what the CLI logs: the start-up lines, an
access line per request and the shutdown line; through the program's root handlers when it
configured logging itself."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from process_support import Tree

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
import asyncio, logging, sys

import gateway

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})

if sys.argv[1] == "root":
    logging.basicConfig(level=logging.WARNING, format="PROGRAM %(name)s %(message)s")

asyncio.run(gateway.serve(app, bind=["127.0.0.1:0"], lifespan="off"))
"""


def _program(tmp_path: Path, mode: str) -> Tree:
    script = tmp_path / "embedded.py"
    script.write_text(textwrap.dedent(PROGRAM))
    return Tree([str(script), mode], tmp_path, prefix=[sys.executable])


def _serve_one_request(tree: Tree) -> None:
    port = int(tree.wait_for(r"listening on http://\S+:(\d+)")[0].group(1))
    assert httpx.get(f"http://127.0.0.1:{port}/path").text == "hello"
    tree.wait_for(r"GET /path")
    tree.process.send_signal(signal.SIGINT)
    assert tree.process.wait(timeout=15) == 0
    tree.wait_for(r"stopped")


def test_serve_logs_start_up_access_and_shutdown_to_stderr(tmp_path: Path) -> None:
    tree = _program(tmp_path, "bare")
    try:
        _serve_one_request(tree)
    finally:
        tree.process.kill()
    text = tree.text
    assert "gateway " in text and "Python " in text
    assert "Traceback" not in text


def test_serve_logs_through_the_programs_own_root_handlers(tmp_path: Path) -> None:
    tree = _program(tmp_path, "root")
    try:
        _serve_one_request(tree)
    finally:
        tree.process.kill()
    lines = [line for line in tree.lines if line.strip()]
    # Every line went through the program's format, none printed a second time by gateway.
    assert all(line.startswith("PROGRAM gateway.") for line in lines), lines
    assert any("listening on http://" in line for line in lines)
    assert sum("GET /path" in line for line in lines) == 1
