"""A real browser against `gateway --dev-tls`: headless Chromium, trusting the development CA
through its NSS database as a user's browser would (no certificate errors ignored), loads
examples/browser_demo.py's page, which reports the page's protocol, a streamed response chunk
by chunk and a WebSocket echo. Over HTTP/2 the WebSocket must be an RFC 8441 extended CONNECT
on the page's own connection; with Chromium's `--disable-http2`, an HTTP/1.1 Upgrade.

Chromium and certutil are required: when either is missing or the browser will not start, the
test fails and says why (.ci/run installs them). A screenshot of each run is kept in
test-artifacts/, or in $TEST_ARTIFACTS when set (not GATEWAY_*: gateway reads those as its
settings and refuses unknown ones, so every gateway the suite starts would exit)."""

from __future__ import annotations

import contextlib
import os
import re
import runpy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from devtools import Chromium, DevTools, DevToolsError, open_devtools, trust_ca
from process_support import Tree
from websockets.exceptions import WebSocketException

pytestmark = pytest.mark.timeout(90)

PAGE_TIMEOUT = 15.0
LOG_TIMEOUT = 5.0
# Chromium resolves `localhost` itself, to ::1 as well as 127.0.0.1; this pins it to the
# address gateway binds, while the name the certificate is checked against stays `localhost`.
LOCALHOST_RULE = "--host-resolver-rules=MAP localhost 127.0.0.1"
# What the page should see, from the app that sends it.
DEMO = runpy.run_path(str(ROOT / "examples" / "browser_demo.py"))
CHUNKS, CHUNK_INTERVAL = DEMO["CHUNKS"], DEMO["CHUNK_INTERVAL"]


@dataclass
class Visit:
    results: dict[str, Any]
    screenshot: Path | None


def artifacts() -> Path:
    directory = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / "test-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devcerts")


@pytest.fixture
def gateway(certs_dir: Path) -> Iterator[Tree]:
    """`gateway --dev-tls` serving the demo on 127.0.0.1, its access log read by the test."""
    tree = Tree(["--dev-tls", "--certs-dir", str(certs_dir), "--bind", "127.0.0.1:0", "--access-log",
                 "examples.browser_demo:app"], ROOT)
    try:
        yield tree
    finally:
        tree.kill()


@pytest.fixture
def visit(gateway: Tree, certs_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Visit]]:
    """`visit(name, *flags)`: a fresh Chromium with `flags`, in a fresh HOME that trusts the
    development CA, opens the demo page and returns what the page reported, with its
    screenshot kept as `browser-NAME.png`."""
    browsers: list[Chromium] = []

    def open_page(name: str, *flags: str) -> Visit:
        port = gateway.port()
        home = tmp_path / name
        trust_ca(home, certs_dir / "ca.pem")
        chromium = Chromium(home, (LOCALHOST_RULE, *flags))
        browsers.append(chromium)
        with open_devtools(chromium.devtools_url()) as devtools:
            page = devtools.open_page(f"https://localhost:{port}/")
            try:
                results = devtools.wait_for(page, "window.results?.done && window.results", PAGE_TIMEOUT)
            except DevToolsError as exc:
                raise DevToolsError(f"{exc}\nthe page shows: {page_text(devtools, page)}\n"
                                    f"gateway's log:\n{gateway.text}") from None
            finally:
                screenshot = keep_screenshot(devtools, page, f"browser-{name}.png")
        return Visit(results, screenshot)

    try:
        yield open_page
    finally:
        for chromium in browsers:
            chromium.close()


def keep_screenshot(devtools: DevTools, page: str, name: str) -> Path | None:
    """The page as it is now, in the artifacts directory; None when it cannot be taken (the
    test then fails on that, or on what went wrong before)."""
    with contextlib.suppress(DevToolsError, WebSocketException, OSError):
        path = artifacts() / name
        path.write_bytes(devtools.screenshot(page))
        return path
    return None


def page_text(devtools: DevTools, page: str) -> str:
    with contextlib.suppress(DevToolsError, WebSocketException):
        return repr(devtools.evaluate(page, "document.title + ': ' + document.body.innerText"))
    return "(nothing: the page does not answer)"


def assert_streamed(chunks: list[dict[str, Any]]) -> None:
    """Every chunk came, in order, each in a read of its own, spread over the time the app took
    to send them (a server that held the body back would deliver it in one read at the end)."""
    assert [chunk["text"] for chunk in chunks] == [f"chunk {n}\n" for n in range(1, CHUNKS + 1)]
    arrivals = [chunk["ms"] for chunk in chunks]
    assert arrivals == sorted(arrivals)
    assert arrivals[-1] - arrivals[0] >= (CHUNKS - 1) * CHUNK_INTERVAL * 1000 / 2


def assert_shown(visit: Visit, protocol: str) -> None:
    assert visit.screenshot is not None and visit.screenshot.read_bytes().startswith(b"\x89PNG")
    results = visit.results
    assert results["errors"] == []
    assert results["protocol"] == protocol
    assert results["echo"] == f"hello over {protocol}"
    assert_streamed(results["chunks"])


def client_port(gateway: Tree, pattern: str) -> str:
    """The client port of the access line matching `pattern` (after `127.0.0.1:PORT - `)."""
    return gateway.wait_for(r"127\.0\.0\.1:(\d+) - " + pattern, timeout=LOG_TIMEOUT)[0].group(1)


def test_http2_page_stream_and_websocket_over_extended_connect(gateway: Tree, visit) -> None:
    shown = visit("h2")
    assert_shown(shown, "h2")
    page = client_port(gateway, re.escape('"GET / HTTP/2" 200'))
    # One connection for everything; RFC 8441 makes the WebSocket one of its streams.
    assert client_port(gateway, re.escape('"GET /stream HTTP/2" 200')) == page
    assert client_port(gateway, re.escape('"CONNECT /ws HTTP/2" 200')) == page
    assert client_port(gateway, r'WebSocket "/ws" over HTTP/2 stream \d+: .* closed 1000') == page
    assert not re.search(r"HTTP/1\.1|Traceback", gateway.text)


def test_http1_page_stream_and_websocket_upgrade(gateway: Tree, visit) -> None:
    shown = visit("http1", "--disable-http2")
    assert_shown(shown, "http/1.1")
    client_port(gateway, re.escape('"GET / HTTP/1.1" 200'))
    client_port(gateway, re.escape('"GET /stream HTTP/1.1" 200'))
    upgrade = client_port(gateway, re.escape('"GET /ws HTTP/1.1" 101'))
    assert client_port(gateway, r'WebSocket "/ws" over HTTP/1\.1 upgrade: .* closed 1000') == upgrade
    assert not re.search(r"HTTP/2|Traceback", gateway.text)
