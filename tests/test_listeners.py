"""Where gateway listens: Unix sockets, descriptors passed by a parent, systemd socket
activation, TLS and plain listeners side by side, and all-or-nothing binding."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from support import assert_port_free, free_port

pytestmark = pytest.mark.timeout(60)

APP = """
import json, os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"server": scope["server"], "client": scope["client"],
                       "scheme": scope["scheme"], "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "where.py").write_text(textwrap.dedent(APP))
    return tmp_path



def curl_unix(path: Path, url: str = "http://localhost/") -> dict:
    import json

    result = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", str(path), url],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("flag", ["--bind", "--uds"])
def test_unix_socket_serves_and_is_removed_at_exit(start, tmp_path, flag):
    path = tmp_path / "app.sock"
    value = f"unix:{path}" if flag == "--bind" else str(path)
    tree = start(flag, value, "where:app")
    tree.wait_for(rf"listening on unix:{path}")
    answer = curl_unix(path)
    # ASGI: a Unix socket's server is [path, None]; its client has no address.
    assert answer["server"] == [str(path), None]
    assert answer["client"] is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666  # as uvicorn leaves it
    assert tree.stop() == 0
    assert not path.exists()


def test_unix_socket_mode_and_a_stale_file_from_a_dead_server(start, tmp_path):
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed server leaves
    tree = start("-b", f"unix:{path}", "--unix-socket-mode", "600", "where:app")
    tree.wait_for("listening on unix:")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert curl_unix(path)["server"] == [str(path), None]
    assert tree.stop() == 0


def test_a_unix_socket_in_use_is_one_line_and_nothing_stays_bound(project, tmp_path):
    path = tmp_path / "busy.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        port = free_port()
        result = run_cli("-b", f"127.0.0.1:{port}", "-b", f"unix:{path}", "where:app", cwd=project)
        errors = [line for line in result.stderr.splitlines() if line.startswith("gateway: error:")]
        assert result.returncode == 2, result.stderr
        assert len(errors) == 1 and "another server is listening" in errors[0], result.stderr
        assert "Traceback" not in result.stderr
        assert_port_free(port)
        assert path.exists()  # the live server's file is left alone


def test_a_port_in_use_after_a_unix_socket_removes_the_socket_file(project, tmp_path):
    path = tmp_path / "first.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_cli("-b", f"unix:{path}", "-b", f"127.0.0.1:{busy}", "where:app", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "listening on" not in result.stderr
    assert not path.exists()


def test_a_descriptor_passed_by_a_parent(start):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    tree = start("--fd", str(fd), "where:app", pass_fds=(fd,))
    tree.wait_for(rf"listening on http://127\.0\.0\.1:{port} \(from fd://{fd}\)")
    listener.close()  # the server has its own copy
    answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()
    assert answer["server"] == ["127.0.0.1", port]
    assert tree.stop() == 0


SYSTEMD_LAUNCHER = """
import os, sys
# What systemd does: the sockets from descriptor 3 on, LISTEN_PID naming the process it starts.
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "gateway", *sys.argv[2:]])
"""


@pytest.mark.parametrize("args", [[], ["--bind", "systemd"], ["--workers", "2"]])
def test_systemd_socket_activation(start, project, args):
    launcher = project / "launch.py"
    launcher.write_text(SYSTEMD_LAUNCHER)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    tree = start(*args, "where:app", pass_fds=(fd,),
                 prefix=[sys.executable, str(launcher), str(fd)])
    tree.wait_for(rf"listening on http://127\.0\.0\.1:{port} \(from systemd, fd 3\)")
    listener.close()
    pids = {httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()["pid"] for _ in range(5)}
    assert pids
    assert tree.stop() == 0


def test_bind_systemd_without_sockets_is_one_line(project):
    result = run_cli("--bind", "systemd", "where:app", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("gateway: error: --bind systemd:")
    assert "Traceback" not in result.stderr


def test_tls_and_plain_listeners_side_by_side(start, certs):
    tree = start("--certfile", certs.cert_file, "--keyfile", certs.key_file, "-b", "127.0.0.1:0",
                 "--insecure-bind", "127.0.0.1:0", "where:app")
    found = tree.wait_for(r"listening on (\w+)://\S+:(\d+) \((.*)\)", 2)
    (tls_scheme, tls_port, tls_protocols), (plain_scheme, plain_port, plain_protocols) = (
        match.groups() for match in found
    )
    assert (tls_scheme, tls_protocols) == ("https", "h2, http/1.1")
    assert (plain_scheme, plain_protocols) == ("http", "http/1.1, h2c")
    with httpx.Client(verify=certs.client_context(), http2=True, timeout=5) as client:
        secure = client.get(f"https://localhost:{tls_port}/")
    assert secure.http_version == "HTTP/2" and secure.json()["scheme"] == "https"
    plain = httpx.get(f"http://127.0.0.1:{plain_port}/", timeout=5)
    assert plain.json()["scheme"] == "http"
    assert tree.stop() == 0


def test_insecure_bind_without_tls_is_one_line(project):
    result = run_cli("--insecure-bind", "127.0.0.1:0", "where:app", cwd=project)
    assert result.returncode == 2
    assert "--insecure-bind" in result.stderr and "Traceback" not in result.stderr


def test_workers_over_a_unix_socket(start, tmp_path):
    path = tmp_path / "app.sock"
    tree = start("--workers", "2", "--uds", str(path), "where:app")
    tree.ready_workers(2)
    assert curl_unix(path)["server"] == [str(path), None]
    assert tree.stop() == 0
    assert not path.exists()
