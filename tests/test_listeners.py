"""Where gateway listens: Unix sockets, descriptors passed by a parent, systemd socket
activation, TLS and plain listeners side by side, and all-or-nothing binding."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from support import assert_port_free, free_port, ipv6_loopback

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


# -- --dev-tls on both loopback addresses -----------------------------------------------------

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="this machine cannot bind ::1")
# Run gateway in a network namespace of its own whose loopback has IPv6 turned off.
WITHOUT_IPV6 = ["unshare", "--user", "--map-root-user", "--net", "sh", "-c",
                "ip link set lo up && echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6 && "
                'exec "$0" -m gateway "$@"', sys.executable]


def dev_tls_client(project: Path) -> httpx.Client:
    """A client trusting the CA that --dev-tls made in the project's certs directory."""
    return httpx.Client(verify=ssl.create_default_context(cafile=str(project / "certs" / "ca.pem")),
                        timeout=10)


def https_listeners(tree, count: int) -> list[tuple[str, int]]:
    return [(match[1], int(match[2])) for match in tree.wait_for(r"listening on https://(\S+):(\d+)", count)]


@needs_ipv6
@pytest.mark.parametrize("args", [["--port", "{port}"], ["--port", "0", "--workers", "2"]])
def test_dev_tls_listens_on_127_0_0_1_and_ipv6_loopback_on_one_port(start, project, args):
    """Browsers try `localhost` as ::1 first: both answer, on the port given (or one port 0 chose)."""
    wanted = free_port()
    tree = start("--dev-tls", "--certs-dir", str(project / "certs"),
                 *(arg.format(port=wanted) for arg in args), "where:app")
    found = https_listeners(tree, 2)
    assert [host for host, _ in found] == ["127.0.0.1", "[::1]"], tree.text
    port = found[0][1]
    assert found[1][1] == port and (port == wanted or "0" in args), tree.text
    if "--workers" in args:
        tree.ready_workers(2)
    with dev_tls_client(project) as client:
        for host, address in (("127.0.0.1", "127.0.0.1"), ("[::1]", "::1")):
            answer = client.get(f"https://{host}:{port}/").json()
            assert answer["server"] == [address, port] and answer["scheme"] == "https"
    assert tree.stop() == 0


@needs_ipv6
@pytest.mark.parametrize(("args", "bound", "not_bound"), [
    (["--bind", "127.0.0.1:{port}"], "127.0.0.1", "::1"),
    (["--host", "::1", "--port", "{port}"], "::1", "127.0.0.1"),
])
def test_dev_tls_with_an_address_listens_only_there(start, project, args, bound, not_bound):
    port = free_port()
    tree = start("--dev-tls", "--certs-dir", str(project / "certs"),
                 *(arg.format(port=port) for arg in args), "where:app")
    url_host = f"[{bound}]" if ":" in bound else bound
    assert https_listeners(tree, 1) == [(url_host, port)]
    with dev_tls_client(project) as client:
        assert client.get(f"https://{url_host}:{port}/").json()["server"] == [bound, port]
    family = socket.AF_INET6 if ":" in not_bound else socket.AF_INET
    with socket.socket(family) as probe:
        probe.settimeout(2)
        assert probe.connect_ex((not_bound, port)) == errno.ECONNREFUSED
    assert tree.stop() == 0
    assert tree.text.count("listening on") == 1, tree.text


def test_dev_tls_where_ipv6_is_off_listens_on_127_0_0_1_and_says_so_once(start, project):
    probe = subprocess.run([*WITHOUT_IPV6[:6], "ip link set lo up && echo 1 > "
                            "/proc/sys/net/ipv6/conf/lo/disable_ipv6"], capture_output=True)
    if probe.returncode != 0 or not shutil.which("nsenter"):
        pytest.skip("no network namespace of our own here (unshare --user --net)")
    port = free_port()
    tree = start("--dev-tls", "--certs-dir", str(project / "certs"), "--port", str(port),
                 "where:app", prefix=WITHOUT_IPV6)
    assert https_listeners(tree, 1) == [("127.0.0.1", port)]
    inside = subprocess.run(
        ["nsenter", "--target", str(tree.process.pid), "--user", "--net", "--preserve-credentials",
         "curl", "-sS", "--max-time", "10", "--cacert", str(project / "certs" / "ca.pem"),
         f"https://127.0.0.1:{port}/"], capture_output=True, text=True)
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["server"] == ["127.0.0.1", port]
    assert tree.stop() == 0
    assert tree.text.count(f"not listening on [::1]:{port}: IPv6 is off") == 1, tree.text
    assert tree.text.count("listening on") == 2 and "Traceback" not in tree.text, tree.text
