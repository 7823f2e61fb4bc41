"""`--log-config FILE` (JSON or YAML for dictConfig, INI for fileConfig, as uvicorn reads them)
and `--use-colors/--no-use-colors`, seen as a user sees them: the lines `gateway` prints when
run as a process, and the one error line a bad file gets."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from conftest import run_cli
from h1_client import RawClient

pytestmark = pytest.mark.timeout(60)

HELLO = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
"""
# gateway's own line: "2026-01-01 00:00:00 [1234] INFO listening on ..."
DEFAULT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\d+\] ")
ESC = "\x1b["


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(HELLO)
    return tmp_path


def serve_once(gateway_cli, *args: str, bad_request: bool = False) -> str:
    """Start gateway with `args`, make one request (and a malformed one), stop it; its output."""
    process = gateway_cli("-b", "127.0.0.1:0", *args, "hello:app")
    port = process.wait_listening()
    assert httpx.get(f"http://127.0.0.1:{port}/one", timeout=5).text == "hello"
    if bad_request:
        with RawClient(port) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
            assert client.read_response().status == 400
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "Traceback" not in output
    return output


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


# -- --log-config --------------------------------------------------------------------------------


def test_json_config_replaces_gateways_handlers_and_keeps_its_levels(project, gateway_cli):
    (project / "logging.json").write_text(json.dumps({
        "version": 1,
        "formatters": {"mine": {"format": "MINE %(name)s %(levelname)s %(message)s"}},
        "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "mine",
                             "stream": "ext://sys.stderr"}},
        "loggers": {
            "gateway.error": {"handlers": ["err"], "level": "DEBUG", "propagate": False},
            "gateway.access": {"handlers": ["err"], "level": "INFO", "propagate": False},
        },
    }))
    output = serve_once(gateway_cli, "--log-config", "logging.json", bad_request=True)
    assert len(lines_with(output, "MINE gateway.error INFO listening on http://127.0.0.1:")) == 1
    assert len(lines_with(output, 'MINE gateway.access INFO 127.0.0.1:')) == 2  # 200 and 400
    # The file's DEBUG level stands, although --log-level is info.
    assert lines_with(output, "MINE gateway.error DEBUG invalid request from 127.0.0.1:")
    # gateway added no handler of its own: no line in its format, none twice.
    assert not [line for line in output.splitlines() if DEFAULT_LINE.match(line)], output


def test_yaml_config_of_one_logger_leaves_the_other_to_gateway(project, gateway_cli):
    access_log = project / "access.log"
    (project / "logging.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        formatters:
          plain:
            format: "ACCESS %(message)s"
        handlers:
          file:
            class: logging.FileHandler
            filename: {access_log}
            formatter: plain
        loggers:
          gateway.access:
            handlers: [file]
            level: INFO
            propagate: false
    """))
    output = serve_once(gateway_cli, "--log-config", "logging.yaml")
    [listening] = lines_with(output, "listening on")
    assert DEFAULT_LINE.match(listening) and " INFO listening on " in listening
    assert not lines_with(output, '"GET /one HTTP/1.1"'), output  # in the file instead
    assert re.fullmatch(r'ACCESS 127\.0\.0\.1:\d+ - "GET /one HTTP/1\.1" 200 5B [\d.]+ms\n',
                        access_log.read_text())


def test_yml_suffix_is_yaml_too(project, gateway_cli):
    (project / "logging.yml").write_text(textwrap.dedent("""\
        version: 1
        formatters: {f: {format: "YML %(name)s %(message)s"}}
        handlers: {h: {class: logging.StreamHandler, formatter: f, stream: "ext://sys.stderr"}}
        root: {handlers: [h], level: INFO}
    """))
    output = serve_once(gateway_cli, "--log-config", "logging.yml")
    # Only the root logger is configured: gateway's loggers propagate to it.
    assert len(lines_with(output, "YML gateway.error listening on")) == 1
    assert len(lines_with(output, 'YML gateway.access 127.0.0.1:')) == 1
    assert not [line for line in output.splitlines() if DEFAULT_LINE.match(line)], output


def test_ini_config_by_file_config(project, gateway_cli):
    (project / "logging.ini").write_text(textwrap.dedent("""\
        [loggers]
        keys=root

        [handlers]
        keys=stderr

        [formatters]
        keys=ini

        [logger_root]
        level=INFO
        handlers=stderr

        [handler_stderr]
        class=StreamHandler
        formatter=ini
        args=(sys.stderr,)

        [formatter_ini]
        format=INI %(name)s %(message)s
    """))
    output = serve_once(gateway_cli, "--log-config", "logging.ini")
    assert len(lines_with(output, "INI gateway.error listening on")) == 1
    assert len(lines_with(output, "INI gateway.access 127.0.0.1:")) == 1
    assert not [line for line in output.splitlines() if DEFAULT_LINE.match(line)], output


BAD_FILES = {
    "missing": (None, "nope.json", ["no such file"]),
    "bad-json": ("{version: 1", "bad.json", ["bad.json", "Expecting property name"]),
    "json-not-a-mapping": ("[1, 2]", "list.json", ["expected a mapping"]),
    "no-version": ('{"handlers": {}}', "nover.json", ["doesn't specify a version"]),
    "handler-cannot-open": (
        '{"version": 1, "handlers": {"f": {"class": "logging.FileHandler",'
        ' "filename": "/nonexistent-dir/x.log"}}}',
        "handler.json", ["Unable to configure handler 'f'", "No such file or directory"]),
    "bad-yaml": ("version: 1\nhandlers: [unclosed\n", "bad.yaml", ["bad.yaml"]),
    "ini-not-ini": ("hello\n", "bad.ini", ["no section headers"]),
    "ini-without-formatters": ("[loggers]\nkeys=root\n", "partial.conf", ["'formatters'"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_one_error_line(project, case):
    content, name, words = BAD_FILES[case]
    if content is not None:
        (project / name).write_text(content)
    result = run_cli("-b", "127.0.0.1:0", "--log-config", name, "hello:app", cwd=project)
    assert_one_error_line(result, f"invalid --log-config '{name}'", *words)


def test_yaml_without_pyyaml_says_what_to_install(project):
    (project / "yaml.py").write_text('raise ImportError("PyYAML is not installed")\n')  # shadows it
    (project / "logging.yaml").write_text("version: 1\n")
    result = run_cli("-b", "127.0.0.1:0", "--log-config", "logging.yaml", "hello:app", cwd=project)
    assert_one_error_line(result, "logging.yaml", "pip install pyyaml")


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: error: "), output
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


# -- --use-colors --------------------------------------------------------------------------------


def test_use_colors_colours_levels_and_statuses(project, gateway_cli):
    output = serve_once(gateway_cli, "--use-colors", bad_request=True)
    [listening] = lines_with(output, "listening on")
    assert " \x1b[32mINFO\x1b[0m listening on " in listening  # green
    [ok] = lines_with(output, '"GET /one HTTP/1.1"')
    assert '"GET /one HTTP/1.1" \x1b[32m200\x1b[0m 5B ' in ok
    [bad] = lines_with(output, '- "-" ')
    assert bad.endswith('- "-" \x1b[31m400\x1b[0m')  # red


def test_no_colours_in_a_pipe_by_default(project, gateway_cli):
    output = serve_once(gateway_cli, bad_request=True)
    assert ESC not in output
    assert lines_with(output, '"GET /one HTTP/1.1" 200 5B ')


def run_on_terminal(project: Path, *args: str) -> str:
    """gateway's stderr when it is a terminal, up to its 'listening on' line."""
    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "-b", "127.0.0.1:0", *args, "hello:app"], cwd=project,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 15
    try:
        while b"listening on" not in output and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    output += os.read(master, 4096)
                except OSError:  # the process is gone
                    break
    finally:
        process.terminate()
        process.wait(10)
        os.close(master)
    text = output.decode("utf-8", "replace")
    assert "listening on" in text, text
    return text


def test_colours_on_a_terminal_by_default(project):
    assert "\x1b[32mINFO\x1b[0m listening on" in run_on_terminal(project)


def test_no_use_colors_on_a_terminal(project):
    assert ESC not in run_on_terminal(project, "--no-use-colors")
