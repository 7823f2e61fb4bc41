"""PROXY protocol behind a real HAProxy in TCP mode: TLS passes through to gateway (ALPN h2
end to end) and the app sees the client's address, not the balancer's.

HAProxy comes from Debian's `haproxy` package (installed by .ci/run). Clients connect from
127.0.0.2, HAProxy from 127.0.0.1, so the two addresses differ."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets.sync.client
from process_support import Tree
from support import OTHER_ADDRESS, free_port

pytestmark = pytest.mark.timeout(90)
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

APP = """
import json


async def app(scope, receive, send):
    answer = {"client": scope["client"], "server": scope["server"], "scheme": scope["scheme"],
              "http_version": scope.get("http_version"),
              "tls": "tls" in scope.get("extensions", {})}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(answer)})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
"""

CONFIG = """
global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend tls_v1
    bind 127.0.0.1:{tls_v1}
    default_backend gateway_tls_v1

backend gateway_tls_v1
    server gateway 127.0.0.1:{gateway_tls} send-proxy

frontend tls_v2
    bind 127.0.0.1:{tls_v2}
    default_backend gateway_tls_v2

backend gateway_tls_v2
    server gateway 127.0.0.1:{gateway_tls} send-proxy-v2 check check-send-proxy inter 1s

frontend plain_v2
    bind 127.0.0.1:{plain_v2}
    default_backend gateway_plain_v2

backend gateway_plain_v2
    server gateway 127.0.0.1:{gateway_plain} send-proxy-v2
"""


class Setup:
    def __init__(self, ports: dict[str, int], gateway: Tree) -> None:
        self.ports = ports
        self.gateway = gateway


@pytest.fixture(scope="module")
def setup(tmp_path_factory, certs) -> Iterator[Setup]:
    assert Path(HAPROXY).exists(), "haproxy is not installed: apt-get install -y haproxy (.ci/run does)"
    directory = tmp_path_factory.mktemp("haproxy")
    (directory / "where.py").write_text(textwrap.dedent(APP))
    gateway = Tree(["--certfile", certs.cert_file, "--keyfile", certs.key_file,
                    "-b", "127.0.0.1:0", "--insecure-bind", "127.0.0.1:0",
                    "--proxy-protocol", "auto", "--log-level", "debug", "where:app"], directory)
    try:
        found = gateway.wait_for(r"listening on \w+://\S+:(\d+)", 2)
        ports = {"gateway_tls": int(found[0].group(1)), "gateway_plain": int(found[1].group(1)),
                 "tls_v1": free_port(), "tls_v2": free_port(), "plain_v2": free_port()}
        config = directory / "haproxy.cfg"
        config.write_text(CONFIG.format(**ports))
        balancer = subprocess.Popen([HAPROXY, "-f", str(config), "-db"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        try:
            for name in ("tls_v1", "tls_v2", "plain_v2"):
                wait_listening(ports[name], balancer)
            yield Setup(ports, gateway)
        finally:
            balancer.terminate()
            balancer.wait(10)
    finally:
        gateway.kill()


def wait_listening(port: int, balancer: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if balancer.poll() is not None:
            raise AssertionError(f"haproxy exited: {balancer.stdout.read() if balancer.stdout else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"haproxy is not listening on {port}")


def curl(setup: Setup, frontend: str, *options: str) -> tuple[dict, str]:
    port = setup.ports[frontend]
    scheme = "http" if frontend.startswith("plain") else "https"
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--interface", OTHER_ADDRESS, "--cacert",
         str(setup.certs_ca), "--resolve", f"localhost:{port}:127.0.0.1", "-w", "\n%{http_version}",
         *options, f"{scheme}://localhost:{port}/"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + setup.gateway.text[-3000:]
    body, _, version = result.stdout.rpartition("\n")
    return json.loads(body), version


@pytest.fixture
def through(setup: Setup, certs) -> Setup:
    setup.certs_ca = certs.ca_file  # type: ignore[attr-defined]
    return setup


@pytest.mark.parametrize("frontend", ["tls_v1", "tls_v2"])
def test_h2_over_tls_passed_through_sees_the_client(through, frontend):
    answer, version = curl(through, frontend, "--http2")
    assert version == "2"  # ALPN h2, negotiated with gateway through the balancer
    assert answer["http_version"] == "2"
    assert answer["client"][0] == OTHER_ADDRESS
    assert answer["scheme"] == "https" and answer["tls"] is True
    assert answer["server"] == ["127.0.0.1", through.ports[frontend]]


@pytest.mark.parametrize("frontend", ["tls_v1", "tls_v2", "plain_v2"])
def test_http1_sees_the_client(through, frontend):
    answer, version = curl(through, frontend, "--http1.1")
    assert version == "1.1" and answer["http_version"] == "1.1"
    assert answer["client"][0] == OTHER_ADDRESS


def test_websocket_through_the_balancer_sees_the_client(through):
    sock = socket.socket()
    sock.bind((OTHER_ADDRESS, 0))
    sock.connect(("127.0.0.1", through.ports["plain_v2"]))
    port = sock.getsockname()[1]
    with websockets.sync.client.connect(f"ws://localhost:{through.ports['plain_v2']}/",
                                        sock=sock) as ws:
        answer = json.loads(ws.recv(5))
    assert answer["client"] == [OTHER_ADDRESS, port]
    assert answer["scheme"] == "ws"


def test_health_checks_with_local_commands_are_served(through):
    # HAProxy checks the tls_v2 backend every second with `check-send-proxy`: a v2 header with
    # the LOCAL command, then a close. Nothing about them is an error.
    time.sleep(1.5)
    log = through.gateway.text
    assert "Traceback" not in log
    # Each check's header parsed (a refused or cut one logs at debug, which is on here).
    assert "bad PROXY protocol header" not in log and "closed before its PROXY" not in log, log


def test_a_client_without_the_header_reaches_nothing(through):
    """Straight to gateway, skipping the balancer: from a trusted address without a header
    (closed: the TLS ClientHello is no PROXY header), and from an untrusted one (closed at
    once)."""
    for source in ("127.0.0.1", OTHER_ADDRESS):
        with socket.socket() as sock:
            sock.bind((source, 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", through.ports["gateway_plain"]))
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(100) == b""  # closed, no answer
            except ConnectionResetError:
                pass  # closed with the request unread: the same, said louder
    through.gateway.wait_for("bad PROXY protocol header")
    through.gateway.wait_for("not in --forwarded-allow-ips")
