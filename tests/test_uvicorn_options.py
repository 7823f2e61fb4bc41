"""uvicorn 0.54's command line, option by option, given to gateway.

Every option of `uvicorn.main.main` (each spelling, `--no-...` included) is given to
`gateway config` with a plausible value of its type, and gateway must take it with the meaning
uvicorn gives it (the printed settings show it, or one `gateway: note:` says what gateway does
instead); `--interface wsgi` included, served through a2wsgi as uvicorn serves it.
An option gateway does not know at all ("unrecognized arguments") fails, listed by name.

The bulk runs `gateway.cli.main(["config", ...])` in this process (the real parser, the real
output); a few batched command lines run as `python -m gateway config` processes, and two
servers started with uvicorn's spellings answer real requests over TLS and a Unix socket.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx
import pytest
from support import free_port
from uvicorn.main import main as uvicorn_main

import gateway
from gateway import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.timeout(60)

HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("hello " + scope["path"]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
"""



# -- what each uvicorn option means in gateway ------------------------------------------------


@dataclass
class Accepted:
    """Exit 0; these settings printed as given on the command line, nothing else changed; and
    one note with these words when gateway ignores the option, none otherwise."""

    settings: dict[str, object] = field(default_factory=dict)
    note: tuple[str, ...] = ()


@dataclass
class PrintsVersion:
    """Exit 0 with `gateway VERSION`, as uvicorn's --version prints its own."""


Meaning = Accepted | PrintsVersion


def setting(name: str, kind: Callable[[str], object] = str) -> Callable[[str | None], Meaning]:
    return lambda value: Accepted({name: kind(value)})


def listed(name: str) -> Callable[[str | None], Meaning]:
    return lambda value: Accepted({name: [value]})


def switch(name: str, on: bool) -> Callable[[str | None], Meaning]:
    return lambda _: Accepted({name: on})


def noted(*words: str) -> Callable[[str | None], Meaning]:
    return lambda value: Accepted(note=tuple(word.format(value=value) for word in words))


def host_bind(host: str | None) -> Meaning:
    assert host is not None
    return Accepted({"bind": [f"[{host}]:8000" if ":" in host else f"{host}:8000"]})


VERIFY_MODES = {"0": "none", "1": "optional", "2": "required"}

MEANING: dict[str, Callable[[str | None], Meaning]] = {
    "--host": host_bind,
    "--port": lambda port: Accepted({"port": int(port)}),
    "--uds": lambda path: Accepted({"bind": [f"unix:{path}"]}),
    "--fd": lambda fd: Accepted({"bind": [f"fd://{fd}"]}),
    "--reload": switch("reload", True),
    "--reload-dir": listed("reload_dirs"),
    "--reload-include": listed("reload_includes"),
    "--reload-exclude": listed("reload_excludes"),
    "--reload-delay": setting("reload_delay", float),
    "--workers": setting("workers", int),
    "--loop": lambda loop: (Accepted(note=("--loop zuvloop", "--loop auto")) if loop == "zuvloop"
                            else Accepted({"loop": loop})),
    "--http": lambda http: (Accepted(note=("--http zttp", "--http auto")) if http == "zttp"
                            else Accepted({"http": http})),
    "--http2": noted("--http2", "HTTP/2 is always on"),
    "--ws": noted("--ws {value}", "its own WebSocket implementation"),
    "--ws-max-size": setting("ws_max_size", int),
    "--ws-max-queue": noted("--ws-max-queue", "by size"),
    "--ws-ping-interval": setting("ws_ping_interval", float),
    "--ws-ping-timeout": setting("ws_ping_timeout", float),
    "--ws-per-message-deflate": setting("ws_per_message_deflate", lambda text: text == "true"),
    "--lifespan": setting("lifespan"),
    "--interface": setting("interface"),
    "--env-file": setting("env_file"),
    "--log-config": setting("log_config"),
    "--log-level": setting("log_level"),
    "--access-log": switch("access_log", True),
    "--no-access-log": switch("access_log", False),
    "--use-colors": switch("use_colors", True),
    "--no-use-colors": switch("use_colors", False),
    "--proxy-headers": switch("proxy_headers", True),
    "--no-proxy-headers": switch("proxy_headers", False),
    "--server-header": switch("server_header", True),
    "--no-server-header": switch("server_header", False),
    "--date-header": switch("date_header", True),
    "--no-date-header": switch("date_header", False),
    "--forwarded-allow-ips": lambda value: Accepted({"forwarded_allow_ips": value.split(",")}),
    "--root-path": setting("root_path"),
    "--limit-concurrency": setting("limit_concurrency", int),
    "--backlog": setting("backlog", int),
    "--limit-max-requests": setting("max_requests", int),
    "--limit-max-requests-jitter": setting("max_requests_jitter", int),
    "--timeout-keep-alive": setting("keep_alive_timeout", float),
    "--timeout-graceful-shutdown": setting("graceful_timeout", float),
    "--timeout-worker-healthcheck": setting("worker_timeout", float),
    "--ssl-keyfile": setting("keyfile"),
    "--ssl-certfile": setting("certfile"),
    "--ssl-keyfile-password": lambda _: Accepted({"keyfile_password": "***"}),  # never printed
    "--ssl-version": noted("--ssl-version", "TLS 1.2 and 1.3"),
    "--ssl-cert-reqs": lambda number: Accepted({"verify_mode": VERIFY_MODES[str(number)]}),
    "--ssl-ca-certs": setting("ca_certs"),
    "--ssl-ciphers": setting("ciphers"),
    "--header": listed("headers"),
    "--version": lambda _: PrintsVersion(),
    "--app-dir": setting("app_dir"),
    "--h11-max-incomplete-event-size": setting("max_head_size", int),
    "--reset-contextvars": noted("--reset-contextvars", "own copy"),
    "--factory": switch("factory", True),
}

# Values where "one of the type" would not be plausible (a port, an ssl constant, a path the
# option reads); "{tmp}", "{cert}", "{key}", "{ca}", "{env}" and "{log}" are filled in per test.
SENSIBLE: dict[str, tuple[str, ...]] = {
    "--host": ("0.0.0.0", "::1"),
    "--port": ("9000", "0"),
    "--uds": ("{tmp}/app.sock",),
    "--fd": ("3",),
    "--reload-include": ("*.html",),
    "--reload-exclude": ("*.tmp",),
    "--ws-per-message-deflate": ("false", "true"),
    "--root-path": ("/api",),
    "--forwarded-allow-ips": ("10.0.0.1,10.0.0.2",),
    "--ssl-keyfile": ("{key}",),
    "--ssl-certfile": ("{cert}",),
    "--ssl-ca-certs": ("{ca}",),
    "--ssl-keyfile-password": ("correct horse",),
    "--ssl-ciphers": ("ECDHE+AESGCM",),
    "--ssl-version": ("17",),  # ssl.PROTOCOL_TLS_SERVER, uvicorn's default
    "--ssl-cert-reqs": ("0", "1", "2"),  # ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED
    "--header": ("X-Served-By:gateway",),
    "--env-file": ("{env}",),
    "--log-config": ("{log}",),
    "--app-dir": ("{tmp}",),
    "--reload-dir": ("{tmp}",),
    "--h11-max-incomplete-event-size": ("65536",),
}

# What else uvicorn needs beside the option for the command line to make sense (a key needs its
# certificate; asking clients for certificates needs TLS and a CA), in uvicorn's spelling.
# The companions' own settings are expected on the command line too.
COMPANIONS: dict[str, tuple[tuple[str, ...], set[str]]] = {
    "--ssl-keyfile": (("--ssl-certfile", "{cert}"), {"certfile"}),
    "--ssl-cert-reqs": (("--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--ssl-ca-certs", "{ca}"),
                        {"certfile", "keyfile", "ca_certs"}),
}


def choices(param: click.Option) -> tuple[str, ...] | None:
    if isinstance(param.type, click.Choice):
        return tuple(str(choice) for choice in param.type.choices)
    # --loop, --http and --ws take any string (a class path too) and show their choices as the
    # metavar, "[auto|asyncio|uvloop|zuvloop]".
    metavar = param.metavar or ""
    if metavar.startswith("[") and metavar.endswith("]") and "|" in metavar:
        return tuple(metavar[1:-1].split("|"))
    return None


def plausible_values(param: click.Option, option: str) -> tuple[str | None, ...]:
    if param.is_flag or option in param.secondary_opts:
        return (None,)
    if option in SENSIBLE:
        return SENSIBLE[option]
    named = choices(param)
    if named:
        return named
    kind = param.type
    if isinstance(kind, click.Path):
        return ("{tmp}",)
    if kind is click.INT:
        return ("7",)
    if kind is click.FLOAT:
        return ("1.5",)
    if kind is click.BOOL:
        return ("false",)
    return ("x",)


def uvicorn_options() -> list[tuple[click.Option, str]]:
    return [(param, option) for param in uvicorn_main.params if isinstance(param, click.Option)
            for option in (*param.opts, *param.secondary_opts)]


def cases() -> list[pytest.param]:
    params = []
    for param, option in uvicorn_options():
        for value in plausible_values(param, option):
            name = option if value is None else f"{option} {value}"
            params.append(pytest.param(option, value, id=name))
    return params


# -- running gateway and reading what it printed -----------------------------------------------


@dataclass
class Outcome:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def files(tmp_path_factory, certs) -> dict[str, str]:
    """The paths the placeholders stand for: a project with hello.py, certificates, a .env file
    and a logging configuration."""
    directory = tmp_path_factory.mktemp("uvicorn-options")
    (directory / "hello.py").write_text(textwrap.dedent(HELLO))
    (directory / "app.env").write_text("CLITESTS_FROM_ENV_FILE=1\n")
    (directory / "logging.json").write_text(json.dumps({"version": 1}))
    return {"{tmp}": str(directory), "{cert}": certs.cert_file, "{key}": certs.key_file,
            "{ca}": certs.ca_file, "{env}": str(directory / "app.env"),
            "{log}": str(directory / "logging.json")}


def fill(text: str, files: dict[str, str]) -> str:
    for placeholder, path in files.items():
        text = text.replace(placeholder, path)
    return text


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No GATEWAY_* or WEB_CONCURRENCY from the machine running the tests, and nothing the
    .env file sets is left behind."""
    for name in [*os.environ, "CLITESTS_FROM_ENV_FILE"]:
        if name.startswith("GATEWAY_") or name in ("WEB_CONCURRENCY", "CLITESTS_FROM_ENV_FILE"):
            monkeypatch.setenv(name, "")  # recorded, so the original state comes back
            monkeypatch.delenv(name)


def config_in_process(args: list[str], capsys) -> Outcome:
    """`gateway config ARGS`, run by the CLI's own main() in this process."""
    capsys.readouterr()
    try:
        cli.main(["config", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def config_process(args: list[str], cwd: str, extra_env: dict[str, str] | None = None) -> Outcome:
    """`python -m gateway config ARGS` as a process, with only `extra_env` of gateway's variables."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("GATEWAY_") and name != "WEB_CONCURRENCY"}
    result = subprocess.run([sys.executable, "-m", "gateway", "config", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=30,
                            env=dict(env, PYTHONUNBUFFERED="1", **(extra_env or {})))
    return Outcome(result.returncode, result.stdout, result.stderr)


_SOURCE_RE = re.compile(r"^(?:# )?(?P<name>\w+)\b.*?\s{3}# (?:from (?P<origin>.+)|default)$")


def printed_settings(text: str) -> tuple[dict[str, object], dict[str, str]]:
    """The `name = value   # from ...` lines: the values (the output is TOML) and the source of
    each setting, "default" or what follows "from"."""
    values = tomllib.loads(text)
    sources = {}
    for line in text.splitlines():
        match = _SOURCE_RE.match(line)
        if match:
            sources[match["name"]] = match["origin"] or "default"
    return values, sources


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def check(outcome: Outcome, meaning: Meaning, what: str, also_given: Collection[str] = ()) -> None:
    """That `outcome` is what `meaning` says; `what` names the command line in messages and
    `also_given` the settings other options on it set."""
    shown = f"{what}\nexit {outcome.code}\nstdout:\n{outcome.out}\nstderr:\n{outcome.err}"
    assert "unrecognized arguments" not in outcome.err, f"gateway does not know {what}\n{shown}"
    assert "Traceback" not in outcome.out + outcome.err, shown
    if isinstance(meaning, PrintsVersion):
        assert outcome.code == 0, shown
        assert outcome.out == f"gateway {gateway.__version__}\n", shown
        return
    assert outcome.code == 0, f"{what} should be accepted\n{shown}"
    notes = lines(outcome.err, "gateway: note: ")
    assert len(notes) == len(outcome.err.splitlines()), f"stderr is not only notes\n{shown}"
    if meaning.note:
        assert len(notes) == 1, f"one note expected\n{shown}"
        for word in meaning.note:
            assert word in notes[0], f"{word!r} not in the note\n{shown}"
    else:
        assert notes == [], shown
    values, sources = printed_settings(outcome.out)
    for name, expected in meaning.settings.items():
        assert values.get(name) == expected, f"{name}: {values.get(name)!r} != {expected!r}\n{shown}"
        assert sources.get(name) == "command line", shown
    changed = {name for name, source in sources.items() if source == "command line"}
    assert changed == {"app", *meaning.settings, *also_given}, \
        f"{what} changed other settings: {sorted(changed)}\n{shown}"


# -- the tests ----------------------------------------------------------------------------------


def test_every_uvicorn_option_has_a_meaning_here():
    """A new uvicorn option (or a renamed one) makes this file incomplete: say what it means."""
    options = {option for _, option in uvicorn_options()}
    assert set(MEANING) == options, (
        f"uvicorn options with no expected meaning: {sorted(options - set(MEANING))}; "
        f"meanings of options uvicorn does not have: {sorted(set(MEANING) - options)}"
    )


def test_gateway_parses_every_uvicorn_option():
    """One list of every uvicorn spelling gateway's parser does not know."""
    known = set(cli.build_parser()._option_string_actions)
    unknown = sorted({option for _, option in uvicorn_options()} - known)
    assert unknown == [], f"gateway neither accepts nor refuses uvicorn's {', '.join(unknown)}"


@pytest.mark.parametrize(("option", "value"), cases())
def test_uvicorn_option(option, value, files, capsys):
    companions, also = COMPANIONS.get(option, ((), set()))
    value = None if value is None else fill(value, files)
    args = [*(fill(arg, files) for arg in companions), option, *([] if value is None else [value]),
            "hello:app"]
    outcome = config_in_process(args, capsys)
    check(outcome, MEANING[option](value), " ".join(args), also)
    if option == "--ssl-keyfile-password":
        assert value not in outcome.out + outcome.err


def test_uvicorn_command_line_as_a_process(files, certs):
    """A long uvicorn command line, translated and noted in one `python -m gateway config`."""
    args = [
        "--host", "0.0.0.0", "--port", "9001",
        "--ssl-certfile", certs.cert_file, "--ssl-keyfile", certs.key_file,
        "--ssl-keyfile-password", "correct horse", "--ssl-ca-certs", certs.ca_file,
        "--ssl-cert-reqs", "2", "--ssl-ciphers", "ECDHE+AESGCM", "--ssl-version", "17",
        "--timeout-keep-alive", "3", "--timeout-graceful-shutdown", "7",
        "--timeout-worker-healthcheck", "9", "--limit-max-requests", "100",
        "--limit-max-requests-jitter", "10", "--h11-max-incomplete-event-size", "65536",
        "--ws", "wsproto", "--ws-max-queue", "8", "--http2", "--reset-contextvars",
        "--loop", "zuvloop", "--http", "zttp", "--workers", "2", "--no-proxy-headers",
        "--no-access-log", "--log-level", "warning", "hello:app",
    ]
    outcome = config_process(args, files["{tmp}"])
    expected = {
        "bind": ["0.0.0.0:9001"], "certfile": certs.cert_file, "keyfile": certs.key_file,
        "keyfile_password": "***", "ca_certs": certs.ca_file, "verify_mode": "required",
        "ciphers": "ECDHE+AESGCM", "keep_alive_timeout": 3.0, "graceful_timeout": 7.0,
        "worker_timeout": 9.0, "max_requests": 100, "max_requests_jitter": 10,
        "max_head_size": 65536, "workers": 2, "access_log": False, "log_level": "warning",
        "proxy_headers": False,
    }
    shown = f"exit {outcome.code}\n{outcome.out}{outcome.err}"
    assert outcome.code == 0, shown
    assert "correct horse" not in outcome.out + outcome.err
    values, sources = printed_settings(outcome.out)
    assert {name: values.get(name) for name in expected} == expected, shown
    assert {name for name, source in sources.items() if source == "command line"} == \
        {"app", *expected}, shown
    assert values["loop"] == "auto" and values["http"] == "auto", shown
    notes = lines(outcome.err, "gateway: note: ")
    assert len(notes) == len(outcome.err.splitlines()) == 7, shown
    for flag in ("--ssl-version", "--ws wsproto", "--ws-max-queue", "--http2", "--reset-contextvars",
                 "--loop zuvloop", "--http zttp"):
        assert sum(note.startswith(f"gateway: note: {flag}") for note in notes) == 1, (flag, shown)


def _wait_for_line(process, pattern: str, timeout: float = 15.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    assert process.process.stdout is not None
    while time.monotonic() < deadline:
        line = process.process.stdout.readline()
        if not line:
            break
        process.lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(process.lines) + process.rest())


def test_serves_https_with_uvicorn_spelling(files, certs, gateway_cli):
    """--host/--port/--ssl-*/--timeout-keep-alive reach the server: it answers over TLS on that
    port and closes an idle connection after 2 seconds, not gateway's default 5."""
    port = free_port()
    process = gateway_cli("--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "2",
                          "--ssl-certfile", certs.cert_file, "--ssl-keyfile", certs.key_file,
                          "hello:app", cwd=Path(files["{tmp}"]))
    assert process.wait_listening() == port
    assert any(f"https://127.0.0.1:{port}" in line for line in process.lines), process.lines
    response = httpx.get(f"https://localhost:{port}/tls", verify=certs.client_context(), timeout=5)
    assert response.status_code == 200
    assert response.text == "hello /tls"

    context = certs.client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /idle HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        while b"hello /idle" not in received:
            chunk = tls.recv(4096)
            assert chunk, received
            received += chunk
        idle_since = time.monotonic()
        try:
            assert tls.recv(4096) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass  # closed without a close_notify the client waited for: closed all the same
        idle = time.monotonic() - idle_since
    assert 1.5 <= idle < 4.5, f"idle connection closed after {idle:.1f}s, not 2"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "Traceback" not in output


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_serves_on_uds(files, gateway_cli, tmp_path):
    path = tmp_path / "app.sock"
    process = gateway_cli("--uds", str(path), "hello:app", cwd=Path(files["{tmp}"]))
    _wait_for_line(process, r"listening on unix:")
    result = subprocess.run(["curl", "-sS", "--max-time", "5", "--unix-socket", str(path),
                             "http://localhost/uds"], capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello /uds"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert not path.exists()  # the socket file gateway made is removed on the way out


@pytest.mark.parametrize(("args", "env", "words"), [
    (["--port", "9000", "--bind", "127.0.0.1:8000"], {}, ("--bind", "--port", "one or the other")),
    (["--bind", "127.0.0.1:8000"], {"GATEWAY_PORT": "9000"}, ("--port", "each --bind address")),
])
def test_port_alone_and_bind_are_refused_together(args, env, words, files):
    """--port alone is the port of the default listeners: beside --bind it would say nothing."""
    outcome = config_process([*args, "hello:app"], files["{tmp}"], env)
    shown = f"exit {outcome.code}\nstdout:\n{outcome.out}\nstderr:\n{outcome.err}"
    assert outcome.code == 2, shown
    errors = lines(outcome.err, "gateway: error: ")
    assert len(errors) == 1 == len(outcome.err.splitlines()), shown
    for word in words:
        assert word in errors[0], shown
