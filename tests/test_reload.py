"""`gateway --reload`: an edit is served within seconds, a broken edit keeps the server up
and says why, and the listening socket never refuses a client meanwhile."""

from __future__ import annotations

import re
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from process_support import Tree

pytestmark = pytest.mark.timeout(90)

APP = """
MESSAGE = "first"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": MESSAGE.encode()})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "devapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "notes.txt").write_text("not code\n")
    return tmp_path


@pytest.fixture
def tree(project: Path) -> Iterator[Tree]:
    tree = Tree(["--reload", "--reload-delay", "0.1", "-b", "127.0.0.1:0", "devapp:app"], project)
    yield tree
    tree.kill()


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def served_within(port: int, text: str, seconds: float) -> float | None:
    """Seconds until the server answers `text`, or None."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text == text:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    return None


def test_an_edit_is_served_within_two_seconds_of_being_seen(tree, project):
    port = tree.port()
    tree.ready_workers(1)
    tree.wait_for(r"watching .* for changes")
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "first"
    edit(project / "devapp.py", '"first"', '"second"')
    tree.wait_for(r"changes in devapp\.py: reloading")
    assert served_within(port, "second", 2.0) is not None, tree.text
    (project / "notes.txt").write_text("still not code\n")  # not *.py: no reload
    time.sleep(1.0)
    assert tree.text.count("changes in") == 1
    assert tree.stop() == 0


def test_a_broken_edit_prints_the_traceback_and_the_next_good_edit_serves(tree, project):
    port = tree.port()
    tree.ready_workers(1)
    tree.wait_for(r"watching .* for changes")
    edit(project / "devapp.py", 'MESSAGE = "first"', 'MESSAGE = "first"\nimport no_such_module_here')
    tree.wait_for("failed to start")
    tree.wait_for(r"ModuleNotFoundError: No module named 'no_such_module_here'")
    assert re.search(r'devapp\.py", line 3, in <module>', tree.text), tree.text
    # The supervisor is alive, and the previous code still answers.
    assert tree.process.poll() is None
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "first"
    edit(project / "devapp.py", "import no_such_module_here", 'MESSAGE = "fixed"')
    assert served_within(port, "fixed", 5.0) is not None, tree.text
    assert tree.stop() == 0


def test_a_syntax_error_at_start_keeps_the_supervisor_waiting_for_a_fix(project):
    app = project / "devapp.py"
    app.write_text(app.read_text() + "\ndef broken(:\n")
    tree = Tree(["--reload", "--reload-delay", "0.1", "-b", "127.0.0.1:0", "devapp:app"], project)
    try:
        port = tree.port()
        tree.wait_for("SyntaxError")
        assert tree.process.poll() is None
        app.write_text(textwrap.dedent(APP).replace('"first"', '"repaired"'))
        assert served_within(port, "repaired", 5.0) is not None, tree.text
        assert tree.stop() == 0
    finally:
        tree.kill()


def test_no_client_is_refused_while_the_new_code_starts(tree, project):
    port = tree.port()
    tree.ready_workers(1)
    tree.wait_for(r"watching .* for changes")
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answers.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    clients = [threading.Thread(target=load) for _ in range(3)]
    for client in clients:
        client.start()
    for round_ in range(3):
        edit(project / "devapp.py", f'"{["first", "r0", "r1"][round_]}"', f'"r{round_}"')
        tree.wait_for(r"worker 1 \(pid \d+\) ready", round_ + 2)
        time.sleep(0.3)
    stop.set()
    for client in clients:
        client.join(15)
    assert failures == []
    assert answers[-1] == "r2"
    assert tree.stop() == 0
