"""Headless Chromium as a test client, driven over the DevTools protocol with `websockets`.

A browser is the client gateway is finally for, and the one whose choices (ALPN, WebSocket
over an HTTP/2 extended CONNECT, when a streamed body reaches a script) no Python client
makes the same way. `Chromium` starts Debian's `chromium` with a fresh profile in a fresh HOME,
whose NSS database trusts the CA it is given; `DevTools` speaks the protocol's JSON
commands to it. Every wait has a deadline, and a missing tool or a browser that will not
start is a `BrowserUnavailable` that says why, so that CI fails rather than skips.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

# Off: what would reach for the network (this machine's is closed, and Chromium then stalls
# on lookups), and QUIC, which would take the page off the TCP connection under test.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--remote-debugging-port=0",
    "--window-size=900,700",
)
START_TIMEOUT = 15.0
COMMAND_TIMEOUT = 10.0


class BrowserUnavailable(AssertionError):
    """Chromium or certutil is missing, or Chromium would not start: the test cannot run."""


class DevToolsError(AssertionError):
    """The browser answered a command with an error, or not in time."""


def require_tool(name: str, package: str) -> str:
    """The path of `name`, or BrowserUnavailable naming the Debian package that provides it."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
    if path is None:
        raise BrowserUnavailable(f"{name} is not installed: apt-get install -y {package}")
    return path


def trust_ca(home: Path, ca_file: Path) -> None:
    """Make `home`'s NSS database (the one Chromium on Linux reads) trust `ca_file` to identify
    websites, as a user does for `gateway --dev-tls`."""
    certutil = require_tool("certutil", "libnss3-tools")
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    for command in (
        [certutil, "-d", f"sql:{database}", "-N", "--empty-password"],
        [certutil, "-d", f"sql:{database}", "-A", "-t", "C,,", "-n", "gateway-dev-ca", "-i", str(ca_file)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise BrowserUnavailable(f"{' '.join(command)} failed ({done.returncode}): "
                                     f"{(done.stdout + done.stderr).strip()}")


class Chromium:
    """One headless Chromium in its own process group, with `home` as HOME and a profile in
    `home`; `close()` kills the whole group, whatever state the browser is in."""

    def __init__(self, home: Path, extra_flags: tuple[str, ...] = ()) -> None:
        binary = require_tool("chromium", "chromium")
        self.profile = home / "profile"
        self.log = home / "chromium.log"
        environment = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
                           XDG_CACHE_HOME=str(home / ".cache"))
        with open(self.log, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    [binary, *CHROMIUM_FLAGS, *extra_flags, f"--user-data-dir={self.profile}",
                     "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=environment, start_new_session=True,
                )
            except OSError as exc:
                raise BrowserUnavailable(f"cannot run {binary}: {exc}") from exc

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def devtools_url(self, timeout: float = START_TIMEOUT) -> str:
        """The browser's DevTools WebSocket address, from the DevToolsActivePort file Chromium
        writes into its profile once it listens (port on the first line, path on the second)."""
        active_port = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserUnavailable(f"chromium exited with {self.process.returncode} before "
                                         f"it listened for DevTools:\n{self.output()}")
            try:
                port, path = active_port.read_text().split()[:2]
                return f"ws://127.0.0.1:{port}{path}"
            except (OSError, ValueError):
                time.sleep(0.05)
        raise BrowserUnavailable(f"chromium did not listen for DevTools within {timeout}s:\n{self.output()}")

    def close(self, timeout: float = 10.0) -> None:
        """Kill the browser and its helpers (renderer, zygote, utilities), and wait until none
        runs: they are the session the browser leads, so its group id names them all. (Their
        zombies are left to init, which may take a second to reap them.)"""
        deadline = time.monotonic() + timeout
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout)
        while running_in_group(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def running_in_group(group: int) -> bool:
    """Whether a process of `group` still runs (is not a zombie), from /proc's stat files."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After the command's closing parenthesis: state, parent, group.
            state, _parent, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(process_group) == group and state != "Z":
            return True
    return False


@contextlib.contextmanager
def open_devtools(url: str) -> Iterator[DevTools]:
    """A DevTools session at `url` (Chromium.devtools_url), closed on leaving."""
    try:
        opened = connect(url, max_size=None, open_timeout=COMMAND_TIMEOUT)
    except (OSError, WebSocketException, TimeoutError) as exc:
        raise BrowserUnavailable(f"cannot open DevTools at {url}: {exc}") from exc
    with opened as connection:
        yield DevTools(connection)


class DevTools:
    """A DevTools session with the browser: commands by id, answers matched to them; events are
    not needed here and are dropped."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    def call(self, method: str, session: str | None = None, timeout: float = COMMAND_TIMEOUT,
             **params: Any) -> dict[str, Any]:
        """Send one command (to a page when `session` is given) and return its result."""
        command_id = next(self.ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.connection.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                answer = json.loads(self.connection.recv(timeout=remaining))
            except TimeoutError:
                raise DevToolsError(f"no answer to {method} within {timeout}s") from None
            if answer.get("id") == command_id:
                if "error" in answer:
                    raise DevToolsError(f"{method} failed: {answer['error']}")
                return answer["result"]

    def open_page(self, url: str) -> str:
        """Open `url` in a new tab; the session id its page commands go to."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        return self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, session: str, expression: str) -> Any:
        """The JSON value of `expression` in the page."""
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float) -> Any:
        """The value of `expression` once it is truthy, checked every 100 ms until `timeout`."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(session, expression)
            except DevToolsError:  # the page may be between documents while it loads
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise DevToolsError(f"{expression!r} was still {value!r} after {timeout}s")

    def screenshot(self, session: str) -> bytes:
        """The page as a PNG."""
        return base64.b64decode(self.call("Page.captureScreenshot", session, format="png")["data"])
