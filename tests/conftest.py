"""Shared fixtures: a real gateway on 127.0.0.1 (in a thread, or as a `gateway` process) and
real TLS certificates from trustme. Tests talk to it only through sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from support import ENGINES

from gateway.config import Config
from gateway.server import Server, loop_factory

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: str
    cert_file: str
    key_file: str
    directory: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        return context


# Every HTTP/2 test runs on gateway's own engine and on h2, the reference it is tested against:
# the modules under tests/h2/ and the WebSocket-over-HTTP/2 ones, once per engine. In-process
# servers take the engine from run_server, `gateway` processes from GATEWAY_H2_ENGINE.
# TEST_H2_ENGINES=fast runs them on one engine only: .ci/run does so on the extra
# interpreters, where h2 (pure Python, tested on 3.11) would add time and no new finding.
# Not GATEWAY_*: gateway reads those as settings and refuses the ones it does not know.
H2_ENGINES = tuple(os.environ.get("TEST_H2_ENGINES", "fast,h2").split(","))
H2_ENGINE_VARIABLE = "GATEWAY_H2_ENGINE"


def _speaks_http2(path: Path) -> bool:
    if path.name == "test_h2_engines.py":  # compares the two engines itself
        return False
    return path.parent.name == "h2" or path.name.startswith("test_ws_h2")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "h2_engine" in metafunc.fixturenames and _speaks_http2(Path(metafunc.definition.path)):
        metafunc.parametrize("h2_engine", H2_ENGINES, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def h2_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The HTTP/2 engine this module's servers use (see H2_ENGINES)."""
    engine = getattr(request, "param", "fast")
    before = os.environ.get(H2_ENGINE_VARIABLE)
    os.environ[H2_ENGINE_VARIABLE] = engine
    yield engine
    if before is None:
        os.environ.pop(H2_ENGINE_VARIABLE, None)
    else:
        os.environ[H2_ENGINE_VARIABLE] = before


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    ca_file = directory / "ca.pem"
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    with open(cert_file, "wb") as handle:
        for blob in leaf.cert_chain_pems:
            handle.write(blob.bytes())
    return Certs(ca, str(ca_file), str(cert_file), str(key_file), directory)


class RunningServer:
    """A gateway serving in a background thread on its own event loop."""

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.server = server
        self.loop = loop
        self.thread = thread

    @property
    def port(self) -> int:
        return self.server.bound[0].port

    @property
    def scheme(self) -> str:
        return "https" if self.server.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self, force: bool = False) -> None:
        self.loop.call_soon_threadsafe(self.server.request_shutdown, force)

    def call(self, function: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(function, *args)

    @property
    def connection_count(self) -> int:
        state = self.server.state
        return len(state.connections) if state is not None else 0


@contextlib.contextmanager
def run_server(app: Any, **settings: Any) -> Iterator[RunningServer]:
    """Serve `app` on 127.0.0.1 with an ephemeral port; stop it gracefully on exit."""
    settings.setdefault("bind", ["127.0.0.1:0"])
    settings.setdefault("lifespan", "auto")
    settings.setdefault("graceful_timeout", 5.0)
    settings.setdefault("h2_engine", os.environ.get(H2_ENGINE_VARIABLE, "fast"))
    config = Config(app=app, **settings)
    server = Server(config, app)
    server.prepare()
    loop = loop_factory(config.loop)()
    failure: list[BaseException] = []
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            task = asyncio.ensure_future(server.serve())
            while not task.done() and not server.started.is_set():
                await asyncio.sleep(0.01)
            ready.set()
            await task

        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=serve, name="gateway-test-server", daemon=True)
    thread.start()
    ready.wait(15)
    if failure:
        raise failure[0]
    running = RunningServer(server, loop, thread)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()
            thread.join(15)
        if failure and not isinstance(failure[0], asyncio.CancelledError):
            raise failure[0]


@pytest.fixture
def serve():
    """`with serve(app, **settings) as server:` inside a test."""
    return run_server


class GatewayProcess:
    """`gateway` run as a user would, from the command line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                 max_open_files: int | None = None) -> None:
        self.args = args
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if env:
            full_env.update(env)

        def limit_files() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            preexec_fn=limit_files if max_open_files is not None else None,
        )
        self.lines: list[str] = []
        self.port: int | None = None

    def wait_listening(self, timeout: float = 15.0) -> int:
        """Read the log until the 'listening on' line and return its port."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"listening on \w+://\S+:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return self.port
        raise AssertionError("gateway did not start:\n" + "".join(self.lines) + self.rest())

    def rest(self, timeout: float = 10.0) -> str:
        """Everything printed until the process exits."""
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.lines.append(out or "")
        return out or ""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        output = self.rest()
        return self.process.returncode, "".join(self.lines[:-1]) + output


@pytest.fixture
def gateway_cli(tmp_path: Path):
    """Start `python -m gateway ARGS` in a directory (with at most `max_open_files`
    descriptors if given); stopped at the end of the test."""
    started: list[GatewayProcess] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              max_open_files: int | None = None) -> GatewayProcess:
        process = GatewayProcess(list(args), cwd or tmp_path, env, max_open_files)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


@pytest.fixture
def start(project: Path) -> Iterator:
    """`start(*args, **options)`: `python -m gateway ARGS` as a process tree (supervisor and
    workers, process_support.Tree) in the module's `project` directory; killed at the end."""
    from process_support import Tree

    trees: list[Tree] = []

    def start(*args: str, **options: Any) -> Tree:
        tree = Tree(list(args), project, **options)
        trees.append(tree)
        return tree

    yield start
    for tree in trees:
        tree.kill()


def run_cli(*args: str, cwd: Path, timeout: float = 30.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m gateway ARGS` to completion (for commands that exit by themselves), with
    `env` over this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )


@pytest.fixture(params=ENGINES)
def http(request: pytest.FixtureRequest) -> str:
    """The HTTP/1.1 engine to serve with (`serve(app, http=http)`): one run per engine."""
    return request.param
