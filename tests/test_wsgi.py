"""WSGI apps served by `gateway --interface wsgi`: Flask (examples/flask_app.py), Django's own
WSGIHandler and a plain function, in real `gateway` processes over TLS, with httpx speaking
HTTP/1.1 and HTTP/2; and the one-line refusals a user sees when the interface is wrong."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, GatewayProcess, run_cli
from flask import Flask
from websockets.exceptions import InvalidStatus
from ws.ws_support import ws_connect

import gateway

pytestmark = pytest.mark.timeout(60)

EXAMPLES = ROOT / "examples"
APPS = ROOT / "tests" / "apps"
VERSIONS = pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])


def start_wsgi_server(app_dir: Path, app: str, certs, tmp_path: Path, *flags: str) -> Iterator[str]:
    """A `gateway --interface wsgi` process over TLS; yields its https URL, and checks on the
    way out that it stopped cleanly."""
    process = GatewayProcess(["--interface", "wsgi", "--certfile", certs.cert_file,
                              "--keyfile", certs.key_file, "-b", "127.0.0.1:0",
                              "--app-dir", str(app_dir), *flags, app], cwd=tmp_path)
    try:
        port = process.wait_listening()
        yield f"https://127.0.0.1:{port}"
        code, output = process.stop()
        assert code == 0, output
        assert "Traceback" not in output, output
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


@pytest.fixture(scope="module")
def flask_url(certs, tmp_path_factory) -> Iterator[str]:
    """examples/flask_app.py mounted at /shop behind a proxy that strips the prefix."""
    yield from start_wsgi_server(EXAMPLES, "flask_app:app", certs, tmp_path_factory.mktemp("flask"),
                                 "--root-path", "/shop")


@pytest.fixture(scope="module")
def django_url(certs, tmp_path_factory) -> Iterator[str]:
    yield from start_wsgi_server(APPS, "django_wsgi:application", certs,
                                 tmp_path_factory.mktemp("django"))


@pytest.fixture(scope="module")
def plain_url(certs, tmp_path_factory) -> Iterator[str]:
    """A framework-less WSGI function on two threads."""
    yield from start_wsgi_server(APPS, "wsgi_plain:app", certs, tmp_path_factory.mktemp("plain"),
                                 "--wsgi-threads", "2")


def client(certs, http2: bool) -> httpx.Client:
    return httpx.Client(http1=not http2, http2=http2, verify=certs.client_context(), timeout=10)


def expected_version(http2: bool) -> str:
    return "HTTP/2" if http2 else "HTTP/1.1"


# -- Flask ------------------------------------------------------------------------------------


@VERSIONS
def test_flask_answers(flask_url, certs, http2):
    with client(certs, http2) as http:
        response = http.get(f"{flask_url}/")
    assert response.status_code == 200
    assert response.http_version == expected_version(http2)
    assert response.text == "Hello from Flask\n"


@VERSIONS
def test_flask_post_body_round_trip(flask_url, certs, http2):
    body = os.urandom(1024 * 1024 + 7)
    with client(certs, http2) as http:
        response = http.post(f"{flask_url}/echo", content=body,
                             headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200
    assert response.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                               "type": "application/octet-stream"}


@VERSIONS
def test_flask_reads_a_body_sent_without_content_length(flask_url, certs, http2):
    """Chunked on HTTP/1.1, DATA frames with no content-length on HTTP/2."""
    parts = [b"first part, ", b"second part, ", b"last part"]
    with client(certs, http2) as http:
        response = http.post(f"{flask_url}/echo", content=iter(parts))
    whole = b"".join(parts)
    assert response.json()["length"] == len(whole)
    assert response.json()["sha256"] == hashlib.sha256(whole).hexdigest()


@VERSIONS
def test_flask_streams_a_generator_as_it_yields(flask_url, certs, http2):
    arrivals: list[tuple[float, str]] = []
    with client(certs, http2) as http, \
            http.stream("GET", f"{flask_url}/stream", params={"count": 4, "pause": 0.4}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        for line in response.iter_lines():
            arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals] == [f"line {number}" for number in range(4)]
    # Each line on the wire when the generator yields it, not all at the end.
    assert arrivals[-1][0] - arrivals[0][0] >= 1.0


@VERSIONS
def test_flask_sees_the_request_in_its_environ(flask_url, certs, http2):
    port = flask_url.rsplit(":", 1)[1]
    with client(certs, http2) as http:
        environ = http.get(f"{flask_url}/environ", params={"q": "1"},
                           headers={"x-custom": "forty two"}).json()
    assert environ == {
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": expected_version(http2),
        "REMOTE_ADDR": "127.0.0.1",
        "SCRIPT_NAME": "/shop",
        "PATH_INFO": "/environ",
        "QUERY_STRING": "q=1",
        "HTTP_X_CUSTOM": "forty two",
        "wsgi.url_scheme": "https",
        "url": f"https://127.0.0.1:{port}/shop/environ?q=1",
    }


def test_a_websocket_request_is_refused_with_403(flask_url, certs):
    url = flask_url.replace("https://", "wss://")
    started = time.monotonic()
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"{url}/", ssl=certs.client_context(), open_timeout=5)
    assert refused.value.response.status_code == 403
    assert time.monotonic() - started < 2


# -- Django -----------------------------------------------------------------------------------


@VERSIONS
def test_django_answers_and_echoes(django_url, certs, http2):
    body = os.urandom(200_000)
    with client(certs, http2) as http:
        hello = http.get(f"{django_url}/")
        echo = http.post(f"{django_url}/echo", content=body)
        streamed = http.get(f"{django_url}/stream")
    assert hello.text == f"Hello from Django over {expected_version(http2)}\n"
    assert echo.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                           "secure": True, "host": django_url.removeprefix("https://")}
    assert streamed.text == "".join(f"chunk {number}\n" for number in range(4))


# -- threads ----------------------------------------------------------------------------------


def test_wsgi_threads_bound_the_requests_running_at_once(plain_url, certs):
    def slow(_: int) -> str:
        return httpx.get(f"{plain_url}/slow", verify=certs.client_context(), timeout=10).text

    with ThreadPoolExecutor(6) as pool:
        peaks = list(pool.map(slow, range(6)))
    assert max(int(peak) for peak in peaks) == 2


@VERSIONS
def test_a_client_leaving_a_stream_frees_its_thread(plain_url, certs, http2):
    """Twice as many abandoned endless streams as threads, and the app still answers."""
    with client(certs, http2) as http:
        before = int(http.get(f"{plain_url}/ended").text)
    for _ in range(4):
        with client(certs, http2) as http, http.stream("GET", f"{plain_url}/forever") as response:
            assert next(response.iter_lines()) == "tick"
    with client(certs, http2) as http:
        assert int(http.get(f"{plain_url}/slow").text) >= 1
        deadline = time.monotonic() + 5
        while int(http.get(f"{plain_url}/ended").text) < before + 4:
            assert time.monotonic() < deadline, "the endless streams were not closed"
            time.sleep(0.05)


def test_a_view_stuck_past_the_graceful_timeout_does_not_keep_the_process(certs, tmp_path):
    process = GatewayProcess(["--interface", "wsgi", "--app-dir", str(APPS), "-b", "127.0.0.1:0",
                              "--graceful-timeout", "1", "wsgi_plain:app"], cwd=tmp_path)
    try:
        port = process.wait_listening()
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(httpx.get, f"http://127.0.0.1:{port}/stuck", timeout=30)
            time.sleep(0.5)
            started = time.monotonic()
            code, output = process.stop()
            assert code == 0, output
            assert time.monotonic() - started < 5, output
            assert "graceful timeout" in output and output.rstrip().endswith("stopped"), output
            with pytest.raises(httpx.RemoteProtocolError):
                stuck.result()
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


# -- the wrong interface, as the user sees it -------------------------------------------------


def assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, shown
    assert result.stdout == "", shown
    assert result.stderr == f"gateway: error: {expected}\n", shown


@pytest.mark.parametrize("app_dir, app", [(EXAMPLES, "flask_app:app"),
                                          (APPS, "django_wsgi:application"),
                                          (APPS, "wsgi_plain:app")])
def test_a_wsgi_app_without_the_flag_says_how_to_serve_it(tmp_path, app_dir, app):
    result = run_cli("--app-dir", str(app_dir), "-b", "127.0.0.1:0", app, cwd=tmp_path)
    assert_one_error_line(result, f"{app} looks like a WSGI app; serve it with --interface wsgi"
                                  " (pip install 'gateway[wsgi]')")


ASGI2_APP = """
class App:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        pass
"""


@pytest.mark.parametrize("flags, expected", [
    (["--interface", "wsgi", "--app-dir", str(EXAMPLES), "hello:app"],
     "hello:app is an ASGI app, not a WSGI one: serve it without --interface wsgi"),
    (["--interface", "wsgi", "asgi2:App"],
     "asgi2:App is not a WSGI app, which takes (environ, start_response): serve it without"
     " --interface wsgi"),
    (["--interface", "wsgi", "--wsgi-threads", "0", "--app-dir", str(EXAMPLES), "flask_app:app"],
     "invalid --wsgi-threads 0: it must be a whole number > 0"),
], ids=["asgi3", "asgi2", "no-threads"])
def test_the_flag_on_what_is_no_wsgi_app_is_refused(tmp_path, flags, expected):
    (tmp_path / "asgi2.py").write_text(ASGI2_APP)
    result = run_cli("-b", "127.0.0.1:0", *flags, cwd=tmp_path)
    assert_one_error_line(result, expected)


def test_without_a2wsgi_the_flag_names_the_extra(tmp_path):
    hide_a2wsgi = "import sys; sys.modules['a2wsgi'] = None; from gateway.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide_a2wsgi, "--interface", "wsgi", "--app-dir", str(EXAMPLES),
         "-b", "127.0.0.1:0", "flask_app:app"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert_one_error_line(result, "--interface wsgi needs a2wsgi: pip install 'gateway[wsgi]'")


def test_gateway_run_refuses_a_wsgi_app_with_the_same_advice(tmp_path):
    program = ("import flask, gateway\n"
               "try:\n"
               "    gateway.run(flask.Flask('shop'), bind=['127.0.0.1:0'])\n"
               "except gateway.ConfigError as error:\n"
               "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.stdout == ("the app <Flask 'shop'> looks like a WSGI app; serve it with"
                             " interface='wsgi' (pip install 'gateway[wsgi]')\n"), result.stderr


def test_gateway_serve_refuses_a_wsgi_app_and_serves_it_as_asked(serve, certs):
    shop = Flask("shop")
    shop.get("/")(lambda: "served in-process\n")
    with pytest.raises(gateway.ConfigError, match="interface='wsgi'"):
        asyncio.run(gateway.serve(shop, bind=["127.0.0.1:0"]))
    with serve(shop, interface="wsgi", certfile=certs.cert_file, keyfile=certs.key_file) as server, \
            client(certs, http2=True) as http:
        assert http.get(f"{server.url}/").text == "served in-process\n"
