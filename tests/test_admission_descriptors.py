"""Out of file descriptors (EMFILE) while accepting: on both loops accepting pauses, with one
warning and no traceback, and the clients waiting meanwhile are served once descriptors free
(issue 8, point 6)."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import pytest
from support import OTHER_ADDRESS, other_client, read_response, wait_until

pytestmark = pytest.mark.timeout(60)

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""
# Far fewer than the connections the attacker opens, yet enough for Python to start.
MAX_OPEN_FILES = 64
WARNING = "cannot accept connections"


class Output:
    """A process's output, read by a thread as it comes."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 5.0) -> bool:
        return wait_until(lambda: any(text in line for line in self.lines), timeout)

    def text(self) -> str:
        self.thread.join(10)
        return "".join(self.lines)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_out_of_descriptors_accepting_pauses_and_resumes(tmp_path: Path, gateway_cli, loop):
    (tmp_path / "fdapp.py").write_text(APP)
    process = gateway_cli("--loop", loop, "--keep-alive-timeout", "60", "--no-access-log",
                          "-b", "127.0.0.1:0", "fdapp:app", cwd=tmp_path,
                          max_open_files=MAX_OPEN_FILES)
    port = process.wait_listening()
    output = Output(process.process.stdout)
    attackers = [connect(port) for _ in range(2 * MAX_OPEN_FILES)]
    assert output.wait_for(WARNING), "".join(process.lines + output.lines)
    with connect(port, OTHER_ADDRESS) as good:
        good.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # Neither served nor refused: it waits in the kernel's backlog.
        good.settimeout(1.0)
        with pytest.raises(TimeoutError):
            good.recv(1)
        for sock in attackers:
            sock.close()
        good.settimeout(5.0)
        assert read_response(good).endswith(b"hello")
    with other_client(timeout=5) as client:
        assert client.get(f"http://127.0.0.1:{port}/").text == "hello"
    process.signal(signal.SIGTERM)
    assert process.process.wait(timeout=10) == 0
    text = output.text()
    assert len([line for line in text.splitlines() if WARNING in line]) == 1, text
    assert "(EMFILE)" in text and f"may open {MAX_OPEN_FILES} descriptors" in text
    assert "Traceback" not in text
