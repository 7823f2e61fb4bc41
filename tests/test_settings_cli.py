"""Settings from a TOML file, GATEWAY_* variables, a .env file and flags, as `python -m gateway`
processes see them: the layers and their order (flag > environment > file > default) shown by
`gateway config`, WEB_CONCURRENCY, mistakes as one error line, secrets never printed, and a
config file or a .env file that a real server then serves with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from support import assert_port_free, free_port

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.timeout(60)

HELLO = """
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/env":
        body = os.environ.get("X", "<unset>") + "|" + os.environ.get("Y", "<unset>")
    else:
        body = "hello " + scope["path"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})
"""

SECRET = "s3cret horse"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hello.py").write_text(textwrap.dedent(HELLO))
    return tmp_path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No GATEWAY_*, WEB_CONCURRENCY, X or Y from the machine running the tests reaches the
    processes started here (the gateway_cli fixture copies os.environ)."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name in ("WEB_CONCURRENCY", "X", "Y"):
            monkeypatch.delenv(name)


def gateway(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m gateway ARGS` to completion, with `env` added to the environment."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


_SOURCE_RE = re.compile(r"^(?:# )?(?P<name>\w+)\b.*?\s{3}# (?:from (?P<origin>.+)|default)$")


def printed(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[object, str]]:
    """From `gateway config`'s output, each setting's value (None when not set) and its source:
    "default" or what follows "# from"."""
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr
    values = tomllib.loads(result.stdout)  # the output is TOML, sources in comments
    settings = {}
    for line in result.stdout.splitlines():
        match = _SOURCE_RE.match(line)
        if match:
            settings[match["name"]] = (values.get(match["name"]), match["origin"] or "default")
    assert "keep_alive_timeout" in settings and "app" in settings, result.stdout
    return settings


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gateway: error: "), output
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# -- where settings come from --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--config", "GATEWAY_CONFIG", "--config over GATEWAY_CONFIG"])
def test_config_file(project, how):
    file = write(project / "gateway.toml", """
        [gateway]
        keep-alive-timeout = 7
        backlog = 100
        bind = ["127.0.0.1:9100", "unix:/tmp/app.sock"]

        [tool.other]
        ignored = true
    """)
    other = write(project / "other.toml", "backlog = 1\n")
    if how == "--config":
        result = gateway("config", "--config", str(file), "hello:app", cwd=project)
    elif how == "GATEWAY_CONFIG":
        result = gateway("config", "hello:app", cwd=project, env={"GATEWAY_CONFIG": str(file)})
    else:
        result = gateway("config", "--config", str(file), "hello:app", cwd=project,
                         env={"GATEWAY_CONFIG": str(other)})
    settings = printed(result)
    source = f"{file}"
    assert settings["keep_alive_timeout"] == (7.0, source)
    assert settings["backlog"] == (100, source)
    assert settings["bind"] == (["127.0.0.1:9100", "unix:/tmp/app.sock"], source)
    assert settings["app"] == ("hello:app", "command line")
    assert settings["graceful_timeout"] == (30.0, "default")
    assert {name for name, (_, origin) in settings.items() if origin != "default"} == \
        {"keep_alive_timeout", "backlog", "bind", "app"}


def test_precedence_flag_over_environment_over_file_over_default(project):
    file = write(project / "gateway.toml", """
        workers = 2
        graceful_timeout = 9
        backlog = 100
        keep_alive_timeout = 7
    """)
    env = {"GATEWAY_WORKERS": "3", "GATEWAY_GRACEFUL_TIMEOUT": "11", "GATEWAY_BACKLOG": "200"}
    result = gateway("config", "--config", "gateway.toml", "--workers", "4", "hello:app",
                     cwd=project, env=env)
    settings = printed(result)
    assert settings["workers"] == (4, "command line")  # in all three
    assert settings["graceful_timeout"] == (11.0, "environment")  # in the environment and the file
    assert settings["backlog"] == (200, "environment")
    assert settings["keep_alive_timeout"] == (7.0, "gateway.toml")  # the file as it was named
    assert settings["header_timeout"] == (10.0, "default")
    assert settings["max_requests"] == (None, "default")
    assert file.exists()


def test_print_config_is_gateway_config(project):
    """`gateway --print-config ...` prints what `gateway config ...` does, and serves nothing."""
    port = free_port()
    args = ["-b", f"127.0.0.1:{port}", "--keep-alive-timeout", "3", "hello:app"]
    shown = gateway("--print-config", *args, cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == gateway("config", *args, cwd=project).stdout
    assert printed(shown)["bind"] == ([f"127.0.0.1:{port}"], "command line")
    assert_port_free(port)


@pytest.mark.parametrize(("env", "args", "workers"), [
    ({"WEB_CONCURRENCY": "3"}, [], (3, "environment")),
    ({"WEB_CONCURRENCY": "3", "GATEWAY_WORKERS": "5"}, [], (5, "environment")),
    ({"WEB_CONCURRENCY": "3"}, ["--workers", "6"], (6, "command line")),
    ({"WEB_CONCURRENCY": "3"}, ["-w", "1"], (1, "command line")),
    ({}, [], (1, "default")),
], ids=["WEB_CONCURRENCY", "GATEWAY_WORKERS-wins", "--workers-wins", "-w-wins", "neither"])
def test_web_concurrency(project, env, args, workers):
    result = gateway("config", *args, "hello:app", cwd=project, env=env)
    assert printed(result)["workers"] == workers


# -- mistakes --------------------------------------------------------------------------------------


ERRORS = {
    "unknown-key-in-file": ({"gateway.toml": "keep_alive_timout = 7\n"}, {},
                            ["'keep_alive_timout'", "gateway.toml", "keep_alive_timeout"]),
    "unknown-key-in-table": ({"gateway.toml": "[gateway]\nmax-reqests = 7\n"}, {},
                             ["'max-reqests'", "gateway.toml", "'max-requests'"]),
    "unknown-variable": ({}, {"GATEWAY_KEEPALIVE": "7"}, ["GATEWAY_KEEPALIVE", "environment"]),
    "bad-type-in-file": ({"gateway.toml": 'keep_alive_timeout = "soon"\n'}, {},
                         ["keep_alive_timeout", "gateway.toml", "'soon'", "seconds"]),
    "bad-list-in-file": ({"gateway.toml": "bind = 8000\n"}, {}, ["bind", "gateway.toml", "list"]),
    "bad-type-in-environment": ({}, {"GATEWAY_BACKLOG": "lots"},
                                ["GATEWAY_BACKLOG", "'lots'", "whole number"]),
    "bad-boolean-in-environment": ({}, {"GATEWAY_ACCESS_LOG": "perhaps"},
                                   ["GATEWAY_ACCESS_LOG", "'perhaps'", "true or false"]),
    "bad-web-concurrency": ({}, {"WEB_CONCURRENCY": "many"}, ["WEB_CONCURRENCY", "'many'"]),
    "toml-syntax": ({"gateway.toml": "backlog = = 3\n"}, {}, ["gateway.toml", "line 1"]),
    "missing-file": ({}, {"GATEWAY_CONFIG": "nowhere.toml"}, ["nowhere.toml", "not found"]),
    "missing-env-file": ({}, {}, ["--env-file", "nowhere.env"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_mistake_is_one_error_line_and_nothing_is_bound(project, case):
    files, env, words = ERRORS[case]
    for name, text in files.items():
        write(project / name, text)
    port = free_port()
    args = ["-b", f"127.0.0.1:{port}", "hello:app"]
    if files:
        args = ["--config", "gateway.toml", *args]
    if case == "missing-env-file":
        args = ["--env-file", "nowhere.env", *args]
    one_error_line(gateway(*args, cwd=project, env=env), *words)
    assert_port_free(port)


@pytest.mark.parametrize("where", ["flag", "environment", "file"])
def test_print_config_hides_the_keyfile_password(project, certs, where):
    args = ["--print-config", "--certfile", certs.cert_file, "--keyfile", certs.key_file]
    env = {}
    if where == "flag":
        args += ["--keyfile-password", SECRET]
    elif where == "environment":
        env["GATEWAY_KEYFILE_PASSWORD"] = SECRET
    else:
        write(project / "gateway.toml", f'keyfile_password = "{SECRET}"\n')
        args += ["--config", "gateway.toml"]
    result = gateway(*args, "hello:app", cwd=project, env=env)
    assert SECRET not in result.stdout + result.stderr
    origin = {"flag": "command line", "environment": "environment", "file": "gateway.toml"}[where]
    assert printed(result)["keyfile_password"] == ("***", origin)


# -- .env files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--env-file", "GATEWAY_ENV_FILE", "env_file in the config file"])
def test_env_file_settings_take_effect(project, how):
    write(project / "app.env", """
        # comments and quotes as python-dotenv reads them
        GATEWAY_KEEP_ALIVE_TIMEOUT=3
        GATEWAY_BACKLOG="64"
        X=from the file
    """)
    if how == "--env-file":
        result = gateway("config", "--env-file", "app.env", "hello:app", cwd=project)
    elif how == "GATEWAY_ENV_FILE":
        result = gateway("config", "hello:app", cwd=project, env={"GATEWAY_ENV_FILE": "app.env"})
    else:
        write(project / "gateway.toml", 'env_file = "app.env"\nbacklog = 32\n')
        result = gateway("config", "--config", "gateway.toml", "hello:app", cwd=project)
    settings = printed(result)
    assert settings["keep_alive_timeout"] == (3.0, "environment")
    assert settings["backlog"] == (64, "environment")  # the .env file is environment: over the file


def test_env_file_does_not_override_the_environment(project):
    write(project / "app.env", "GATEWAY_BACKLOG=64\n")
    result = gateway("config", "--env-file", "app.env", "hello:app", cwd=project,
                     env={"GATEWAY_BACKLOG": "128"})
    assert printed(result)["backlog"] == (128, "environment")


def test_env_file_reaches_the_app_and_binds(project, gateway_cli):
    """The app sees the file's variables (those already set keep their value), and a
    GATEWAY_BIND in it is where the server listens."""
    write(project / "app.env", """
        X="from the env file"
        Y=the file loses
        GATEWAY_BIND=127.0.0.1:0
    """)
    process = gateway_cli("--env-file", "app.env", "hello:app", cwd=project,
                          env={"Y": "the environment wins"})
    port = process.wait_listening()
    response = httpx.get(f"http://127.0.0.1:{port}/env", timeout=5)
    assert response.text == "from the env file|the environment wins"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "Traceback" not in output


# -- a config file that serves ---------------------------------------------------------------------


def test_config_file_serves_without_an_app_argument(project, gateway_cli):
    write(project / "gateway.toml", """
        app = "hello:app"
        bind = ["127.0.0.1:0"]
        keep_alive_timeout = 2
    """)
    process = gateway_cli("--config", "gateway.toml", cwd=project)
    port = process.wait_listening()
    response = httpx.get(f"http://127.0.0.1:{port}/from-file", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello /from-file"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "Traceback" not in output


def test_config_file_through_gateway_config_serves(project, gateway_cli):
    write(project / "settings.toml", '[gateway]\napp = "hello:app"\nbind = ["127.0.0.1:0"]\n')
    process = gateway_cli(cwd=project, env={"GATEWAY_CONFIG": "settings.toml"})
    port = process.wait_listening()
    assert httpx.get(f"http://127.0.0.1:{port}/env-config", timeout=5).text == "hello /env-config"
    assert process.stop()[0] == 0
