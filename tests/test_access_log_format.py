"""`--access-log-format FMT`: gunicorn's atoms and gateway's own, as `gateway` processes write
them for requests made over real sockets (HTTP/1.1, h2c, HTTP/2 over TLS); the format from the
environment and from a TOML file; a format that cannot work as one error line at start-up;
colour on the status only where it is text; no entry made, so no line formatted, when the
access log is off or its level is above INFO; and every atom in the README's table."""

from __future__ import annotations

import logging
import os
import re
import socket
import textwrap
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, run_cli
from h1_client import RawClient
from support import captured_log, http_app, read_response

import gateway.logs
from gateway.access import ATOMS

pytestmark = pytest.mark.timeout(60)

APP = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.21)  # uvloop's timers may end a sleep up to a millisecond early
    if scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"X-Request-Id", b"abc")]})
    await send({"type": "http.response.body", "body": b"hello"})
"""

# Every atom, as key=value fields split by "|".
EVERY_ATOM = "|".join(f"{key}=%({key})s" for key in ATOMS) + "|i=%({X-Trace}i)s|o=%({x-request-id}o)s"
ESC = "\x1b["


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "fmtapp.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)


def raw_get(port: int, target: str, *headers: str) -> int:
    """GET `target` over a new connection; the client's port."""
    lines = [f"GET {target} HTTP/1.1", "Host: x", *headers, "Connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode())
        read_response(sock)
        return sock.getsockname()[1]


def atom_lines(output: str) -> list[dict[str, str]]:
    """The access lines written in EVERY_ATOM, as {atom: value}, in order."""
    found = []
    for line in output.splitlines():
        if " INFO h=" in line:
            fields = line.split(" INFO ", 1)[1].split("|")
            found.append(dict(field.split("=", 1) for field in fields))
    return found


def serve(gateway_cli, project: Path, *args: str, env: dict[str, str] | None = None):
    process = gateway_cli("-b", "127.0.0.1:0", *args, "fmtapp:app", cwd=project, env=env)
    return process, process.wait_listening()


def worker_pid(output: str) -> int:
    return int(re.search(r"gateway \S+, Python \S+, pid (\d+)", output).group(1))


def test_every_atom_over_http11(project, gateway_cli):
    process, port = serve(gateway_cli, project, "--access-log-format", EVERY_ATOM)
    raw_get(port, "/ok?x=1&y=%20", "Referer: http://ref/", "User-Agent: raw-test", "X-Trace: trace-1")
    raw_get(port, "/empty")
    raw_get(port, "/slow")
    returncode, output = process.stop()
    assert returncode == 0, output
    ok, empty, slow = atom_lines(output)
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", ok.pop("t")), output
    assert re.fullmatch(r"\d+\.\d{6}", ok.pop("L"))
    for key in ("D", "M"):
        assert ok.pop(key).isdigit()
    assert ok == {
        "h": "127.0.0.1", "l": "-", "u": "-", "r": "GET /ok?x=1&y=%20 HTTP/1.1", "m": "GET",
        "U": "/ok", "q": "x=1&y=%20", "H": "HTTP/1.1", "s": "200", "B": "5", "b": "5",
        "f": "http://ref/", "a": "raw-test", "T": "0", "p": f"<{worker_pid(output)}>",
        "P": "http/1.1", "S": "-", "i": "trace-1", "o": "abc",
    }
    assert (empty["s"], empty["B"], empty["b"], empty["f"], empty["a"], empty["q"]) == (
        "204", "0", "-", "-", "-", "")
    assert (empty["i"], empty["o"]) == ("-", "-")
    assert int(slow["D"]) >= 200_000 and int(slow["M"]) >= 200 and float(slow["L"]) >= 0.2
    assert slow["T"] == "0"


def test_http2_atoms_over_h2c(project, gateway_cli):
    process, port = serve(gateway_cli, project, "--access-log-format", EVERY_ATOM)
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        for _ in range(2):
            assert client.get(f"http://127.0.0.1:{port}/ok", headers={"x-trace": "t2"}).status_code == 200
    returncode, output = process.stop()
    assert returncode == 0, output
    first, second = atom_lines(output)
    assert (first["H"], first["P"], first["S"], first["r"]) == ("HTTP/2", "h2c", "1", "GET /ok HTTP/2")
    assert (first["i"], first["o"], first["B"]) == ("t2", "abc", "5")
    assert second["S"] == "3"  # the connection's second stream


def test_http2_over_tls_is_h2(project, gateway_cli, certs):
    process, port = serve(gateway_cli, project, "--certfile", certs.cert_file, "--keyfile",
                          certs.key_file, "--access-log-format", "%(P)s %(H)s %(S)s %(s)s")
    with httpx.Client(http2=True, verify=certs.client_context(), timeout=5) as client:
        assert client.get(f"https://127.0.0.1:{port}/ok").http_version == "HTTP/2"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert " INFO h2 HTTP/2 1 200" in output, output


def test_a_request_refused_before_it_was_read(project, gateway_cli):
    process, port = serve(gateway_cli, project, "--access-log-format", '%(h)s "%(r)s" %(s)s %(b)s %(S)s')
    with RawClient(port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        assert client.read_response().status == 400
    returncode, output = process.stop()
    assert returncode == 0, output
    assert ' INFO 127.0.0.1 "-" 400 - -\n' in output, output


@pytest.mark.parametrize("how", ["environment", "toml"])
def test_format_from_the_environment_and_the_file(project, gateway_cli, how):
    fmt = 'ENV %(m)s %(U)s "%(q)s" %(s)s'
    if how == "environment":
        process, port = serve(gateway_cli, project, env={"GATEWAY_ACCESS_LOG_FORMAT": fmt})
    else:
        (project / "gateway.toml").write_text(f"access_log_format = '{fmt}'\n")
        process, port = serve(gateway_cli, project, "--config", "gateway.toml")
    raw_get(port, "/ok?a=b")
    returncode, output = process.stop()
    assert returncode == 0, output
    assert ' INFO ENV GET /ok "a=b" 200\n' in output, output


@pytest.mark.parametrize(("fmt", "words"), [
    ("%(h)s %(zz)s", ["unknown atom %(zz)s", "known: h, l, u, t"]),
    ("%({x-forwarded-for}e)s", ["%({x-forwarded-for}e)s", "no ASGI equivalent"]),
    ("%(b)d", ["%(b)d", "cannot be applied"]),
    ("100% %(s)s", ["cannot be applied", "%%"]),
], ids=["unknown", "environ-atom", "number-of-dash", "bare-percent"])
def test_a_format_that_cannot_work_is_one_error_line(project, fmt, words):
    result = run_cli("-b", "127.0.0.1:0", "--access-log-format", fmt, "fmtapp:app", cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: error: invalid --access-log-format"), output
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_gunicorn_spelling_of_the_flag(project, gateway_cli):
    process, port = serve(gateway_cli, project, "--access-logformat", "GUNICORN %(s)s")
    raw_get(port, "/ok")
    returncode, output = process.stop()
    assert returncode == 0, output
    assert " INFO GUNICORN 200\n" in output, output


def test_colour_goes_on_a_text_status_only(project, gateway_cli):
    process, port = serve(gateway_cli, project, "--use-colors", "--access-log-format",
                          "C %(s)s %(r)s")
    raw_get(port, "/ok")
    _, output = process.stop()
    assert "C \x1b[32m200\x1b[0m GET /ok HTTP/1.1" in output, output
    process, port = serve(gateway_cli, project, "--use-colors", "--access-log-format",
                          "D %(s)d %(r)s")
    raw_get(port, "/ok")
    _, output = process.stop()
    [line] = [line for line in output.splitlines() if " D 200 " in line]
    assert line.count(ESC) == 2, line  # the level name's colour and its reset only


# -- nothing formatted when the access log is off ------------------------------------------------


@http_app
async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.parametrize(("access_log", "level", "expected"), [
    (True, logging.INFO, 20), (True, logging.WARNING, 0), (False, logging.INFO, 0),
], ids=["on", "level-warning", "access-log-off"])
def test_no_entry_is_made_unless_a_line_is_written(serve, monkeypatch, access_log, level, expected):
    made = []
    entry_class = gateway.logs.HTTPEntry

    def counting_entry(*args):
        made.append(args)
        return entry_class(*args)

    monkeypatch.setattr(gateway.logs, "HTTPEntry", counting_entry)
    with captured_log("gateway.access", level) as log, serve(hello, access_log=access_log) as server, \
            httpx.Client(timeout=5) as client:
        for _ in range(20):
            assert client.get(f"{server.url}/").status_code == 200
    assert len(made) == expected
    assert len(log.records) == expected


def test_readme_documents_every_atom():
    readme = (ROOT / "README.md").read_text()
    for key in ATOMS:
        assert f"`%({key})s`" in readme, key
    assert "`%({header}i)s`" in readme and "`%({header}o)s`" in readme
