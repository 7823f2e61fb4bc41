"""`gateway --workers N`: a supervisor and worker processes over shared sockets, driven with
real signals under real load."""

from __future__ import annotations

import signal
import ssl
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client
from process_support import process_title

pytestmark = pytest.mark.timeout(90)

APP = """
import asyncio, os, time
from urllib.parse import parse_qs

VERSION = "v1"
LOG = os.environ.get("REQUEST_LOG")

if os.environ.get("FAIL_IMPORT"):
    raise RuntimeError("no database at import")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        if os.environ.get("FAIL_STARTUP"):
            await send({"type": "lifespan.startup.failed", "message": "no database at start-up"})
            return
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
    query = parse_qs(scope["query_string"].decode())
    if LOG:
        with open(LOG, "a") as log:
            log.write(f"{query.get('id', ['-'])[0]} {os.getpid()}\\n")
    if scope["path"] == "/slow":
        await asyncio.sleep(float(query.get("s", ["1.5"])[0]))
    elif scope["path"] == "/block":
        time.sleep(60)
    body = f"{VERSION} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app9.py").write_text(textwrap.dedent(APP))
    return tmp_path



def pid_of(response: httpx.Response) -> int:
    return int(response.text.split()[1])


def test_workers_share_the_listeners_and_are_named(start):
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    workers = tree.ready_workers(2)
    assert {number for number, _ in workers} == {1, 2}
    seen = set()
    for _ in range(100):
        seen.add(pid_of(httpx.get(f"http://127.0.0.1:{port}/", timeout=5)))
        if len(seen) == 2:
            break
    assert seen <= {pid for _, pid in workers}
    assert process_title(tree.process.pid) == "gateway: supervisor app9:app"
    assert sorted(process_title(pid) for _, pid in workers) == ["gateway: worker 1",
                                                              "gateway: worker 2"]
    assert tree.stop() == 0


def test_a_killed_worker_is_replaced_and_only_its_requests_are_lost(start, project):
    log = project / "requests.log"
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "app9:app", env={"REQUEST_LOG": str(log)})
    port = tree.port()
    workers = dict(tree.ready_workers(2))
    results: dict[int, str] = {}

    def slow(ident: int) -> None:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/slow?id={ident}&s=2", timeout=10)
            results[ident] = "ok" if response.status_code == 200 else str(response.status_code)
        except httpx.HTTPError as exc:
            results[ident] = type(exc).__name__

    threads = [threading.Thread(target=slow, args=(ident,)) for ident in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().split("\n")) < 9):
        time.sleep(0.05)
    served_by = dict(line.split() for line in log.read_text().splitlines())
    victim = workers[1]
    signal_pid(victim, signal.SIGKILL)
    for thread in threads:
        thread.join(15)
    lost = {int(ident) for ident, pid in served_by.items() if int(pid) == victim}
    for ident, outcome in results.items():
        assert (outcome != "ok") == (ident in lost), (results, served_by, victim)
    tree.wait_for(rf"worker 1 \(pid {victim}\) exited \(killed by SIGKILL\): starting another")
    replacement = tree.ready_workers(3)[2]
    assert replacement[0] == 1 and replacement[1] != victim
    for _ in range(10):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    assert tree.stop() == 0


@pytest.mark.parametrize("failure", ["FAIL_IMPORT", "FAIL_STARTUP"])
def test_a_worker_that_cannot_start_stops_everything_with_exit_3_said_once(start, failure):
    tree = start("--workers", "3", "-b", "127.0.0.1:0", "app9:app", env={failure: "1"})
    assert tree.wait(20) == 3
    output = tree.text
    assert output.count("failed to start") == 1, output
    assert " ready" not in output
    if failure == "FAIL_IMPORT":  # the user's traceback, once: their file and line
        assert output.count("Traceback (most recent call last)") == 1, output
        assert 'app9.py", line 9, in <module>' in output, output
    else:
        assert output.count("no database at start-up") == 1, output


def test_a_blocked_worker_is_killed_named_and_replaced(start):
    tree = start("--workers", "2", "--worker-timeout", "2", "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    tree.ready_workers(2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/block", timeout=8)
    match = tree.wait_for(r"worker (\d) \(pid (\d+)\) sent no heartbeat for 2s \(--worker-timeout\)")[0]
    tree.wait_for(r'File ".*app9\.py", line \d+ in app')  # where it was blocked
    replacement = tree.ready_workers(3)[2]
    assert replacement[0] == int(match.group(1))
    assert int(match.group(2)) not in tree.live_workers()
    for _ in range(10):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    assert tree.stop() == 0


def test_sigterm_drains_every_protocol_then_exits_0(start, certs, project):
    log = project / "requests.log"
    tree = start("--workers", "2", "--certfile", certs.cert_file, "--keyfile", certs.key_file,
                 "-b", "127.0.0.1:0", "--insecure-bind", "127.0.0.1:0", "app9:app",
                 env={"REQUEST_LOG": str(log)})
    ports = [int(m.group(1)) for m in tree.wait_for(r"listening on \w+://\S+:(\d+)", 2)]
    tls, plain = ports
    tree.ready_workers(2)
    context = certs.client_context()
    outcomes: dict[str, str] = {}

    def fetch(name: str, url: str, **options: object) -> None:
        try:
            with httpx.Client(timeout=15, **options) as client:
                response = client.get(url)
            outcomes[name] = f"{response.status_code} {response.http_version}"
        except httpx.HTTPError as exc:
            outcomes[name] = repr(exc)

    def curl(name: str, *args: str) -> None:
        # curl, not httpx, over HTTP/2: httpcore fails a stream in flight when GOAWAY arrives,
        # even one the GOAWAY says will be answered.
        result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} HTTP/%{http_version}",
                                 "--max-time", "15", *args], capture_output=True, text=True)
        outcomes[name] = result.stdout if result.returncode == 0 else result.stderr

    def websocket() -> None:
        with websockets.sync.client.connect(f"ws://127.0.0.1:{plain}/ws") as ws:
            ws.send("hi")
            assert ws.recv(5) == "hi"
            outcomes["ws-open"] = "yes"
            try:
                ws.recv(15)
            except websockets.exceptions.ConnectionClosed as exc:
                outcomes["ws"] = str(exc.rcvd.code if exc.rcvd else None)

    jobs = [
        threading.Thread(target=fetch, args=("h1", f"http://127.0.0.1:{plain}/slow?id=h1&s=2")),
        threading.Thread(target=fetch, args=("h1-tls", f"https://localhost:{tls}/slow?id=h1t&s=2"),
                         kwargs={"verify": context}),
        threading.Thread(target=curl, args=("h2", "--http2", "--cacert", certs.ca_file,
                                            f"https://localhost:{tls}/slow?id=h2&s=2")),
        threading.Thread(target=curl, args=("h2c", "--http2-prior-knowledge",
                                            f"http://127.0.0.1:{plain}/slow?id=h2c&s=2")),
        threading.Thread(target=websocket),
    ]
    for job in jobs:
        job.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        log.exists() and len(log.read_text().splitlines()) == 4 and "ws-open" in outcomes
    ):
        time.sleep(0.05)
    tree.signal(signal.SIGTERM)
    for job in jobs:
        job.join(20)
    assert outcomes == {
        "h1": "200 HTTP/1.1", "h1-tls": "200 HTTP/1.1", "h2": "200 HTTP/2", "h2c": "200 HTTP/2",
        "ws-open": "yes", "ws": "1001",
    }, tree.text
    assert tree.wait(20) == 0
    assert tree.text.count("stopped") >= 2


def test_sighup_rolls_new_code_in_without_refusing_a_connection(start, project):
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    old = {pid for _, pid in tree.ready_workers(2)}
    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:  # a new connection each time: a refused one would show
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
                versions.append(response.text.split()[0])
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(0.5)
    app = project / "app9.py"
    app.write_text(app.read_text().replace('VERSION = "v1"', 'VERSION = "v2"'))
    tree.signal(signal.SIGHUP)
    new = tree.ready_workers(4)[2:]
    tree.wait_for(r"worker \d \(pid \d+\) stopped", 2)
    time.sleep(0.5)
    stop.set()
    for client in clients:
        client.join(15)
    assert failures == []
    assert versions[0] == "v1" and versions[-1] == "v2"
    assert old.isdisjoint(pid for _, pid in new)
    assert tree.live_workers() == {pid for _, pid in new}
    assert tree.stop() == 0


def test_sighup_serves_renewed_certificates(start, certs, tmp_path):
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"

    def issue() -> bytes:
        leaf = certs.ca.issue_cert("localhost")
        leaf.private_key_pem.write_to_path(str(key_file))
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())

    first = issue()
    tree = start("--workers", "1", "--max-requests", "100000", "--certfile", str(cert_file),
                 "--keyfile", str(key_file), "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    tree.ready_workers(1)
    assert served_certificate(port, certs) == first
    second = issue()
    tree.signal(signal.SIGHUP)
    tree.ready_workers(2)
    tree.wait_for(r"worker 1 \(pid \d+\) stopped")
    assert served_certificate(port, certs) == second
    assert tree.stop() == 0


def served_certificate(port: int, certs) -> bytes:
    import socket

    context = certs.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            context.wrap_socket(sock, server_hostname="localhost") as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate


def test_sigttin_and_sigttou_add_and_remove_a_worker(start):
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "app9:app")
    tree.port()
    first = dict(tree.ready_workers(2))
    tree.signal(signal.SIGTTIN)
    added = tree.ready_workers(3)[2]
    assert added[0] == 3
    assert tree.live_workers() == {*first.values(), added[1]}
    assert process_title(added[1]) == "gateway: worker 3"
    tree.signal(signal.SIGTTOU)
    tree.wait_for(rf"worker 3 \(pid {added[1]}\) stopped")
    tree.signal(signal.SIGTTOU)
    tree.wait_for(rf"worker 2 \(pid {first[2]}\) stopped")
    assert tree.live_workers() == {first[1]}
    tree.signal(signal.SIGTTOU)  # the last worker stays
    tree.wait_for("keeping the last worker")
    assert tree.live_workers() == {first[1]}
    assert tree.stop() == 0


def test_max_requests_recycles_a_worker_without_failures(start):
    tree = start("--workers", "1", "--max-requests", "20", "--max-requests-jitter", "5",
                 "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    tree.ready_workers(1)
    pids = set()
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=5) as client:
        while len(pids) < 3 and time.monotonic() < deadline:
            response = client.get(f"http://127.0.0.1:{port}/")
            assert response.status_code == 200
            pids.add(pid_of(response))
            time.sleep(0.01)
    assert len(pids) >= 3, tree.text
    assert "(--max-requests): recycling" in tree.text
    assert tree.stop() == 0


def signal_pid(pid: int, signum: int) -> None:
    import os

    os.kill(pid, signum)


def test_workers_of_a_killed_supervisor_stop_instead_of_lingering(start):
    tree = start("--workers", "2", "-b", "127.0.0.1:0", "app9:app")
    port = tree.port()
    workers = [pid for _, pid in tree.ready_workers(2)]
    tree.process.kill()
    tree.process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and
                                              "zombie" not in _state(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"
