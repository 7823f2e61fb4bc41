"""Settings from TOML files (real files in tmp_path) and GATEWAY_* variables (plain dicts, and once
a real environment in a subprocess): conversion, spelling, errors, precedence and printing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gateway import settings_file
from gateway.config import Config, ConfigError
from gateway.settings_file import (
    Source,
    config_file_from_environment,
    convert,
    default_values,
    describe,
    layer,
    read_environment,
    read_file,
    setting_names,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def write(tmp_path: Path, text: str, name: str = "gateway.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


# --- names and defaults -------------------------------------------------------------------------


def test_setting_names_are_the_config_fields_app_included() -> None:
    assert setting_names() == [f.name for f in dataclasses.fields(Config)]
    assert "app" in setting_names()


def test_default_values_are_configs_own_defaults() -> None:
    defaults = default_values()
    assert defaults == dataclasses.asdict(Config())
    defaults["bind"].append("0.0.0.0:1")  # a fresh list each time, never Config's factory's
    assert default_values()["bind"] == []


# --- conversion --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "yes", "on", "1", "TRUE", " Yes "])
def test_bool_true_words(text: str) -> None:
    assert read_environment({"GATEWAY_H2C": text}) == {"h2c": True}


@pytest.mark.parametrize("text", ["false", "no", "off", "0", "Off"])
def test_bool_false_words(text: str) -> None:
    assert read_environment({"GATEWAY_H2C": text}) == {"h2c": False}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("backlog", "4096", 4096),
        ("keep_alive_timeout", "7", 7.0),
        ("keep_alive_timeout", "0.25", 0.25),
        ("root_path", "/api", "/api"),
        ("app", "main:app", "main:app"),
        ("max_body_size", "1048576", 1048576),
        ("max_body_size", "", None),
        ("certfile", "", None),
        ("certfile", "cert.pem", "cert.pem"),
        ("root_path", "", ""),  # a plain str keeps the empty string
        ("bind", "0.0.0.0:80, [::1]:8443", ["0.0.0.0:80", "[::1]:8443"]),
        ("bind", "0.0.0.0:80", ["0.0.0.0:80"]),
        ("address_guard_exempt", "", []),
    ],
)
def test_environment_text_becomes_the_fields_type(name: str, text: str, expected: object) -> None:
    value = read_environment({"GATEWAY_" + name.upper(): text})[name]
    assert value == expected
    assert type(value) is type(expected)


def test_toml_values_become_the_fields_type(tmp_path: Path) -> None:
    path = write(tmp_path, """
        app = "main:app"
        factory = true
        backlog = 4096
        keep_alive_timeout = 7          # a TOML integer for a float field
        send_timeout = 2.5
        certfile = "cert.pem"
        bind = ["0.0.0.0:80", "[::1]:8443"]
        address_guard_exempt = "10.0.0.0/8, 192.168.0.1"
        max_head_size = "65536"
    """)
    values = read_file(path)
    assert values == {
        "app": "main:app",
        "factory": True,
        "backlog": 4096,
        "keep_alive_timeout": 7.0,
        "send_timeout": 2.5,
        "certfile": "cert.pem",
        "bind": ["0.0.0.0:80", "[::1]:8443"],
        "address_guard_exempt": ["10.0.0.0/8", "192.168.0.1"],
        "max_head_size": 65536,  # a string in a file is read as the environment reads it
    }
    assert type(values["keep_alive_timeout"]) is float


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("keep_alive_timeout = \"abc\"",
         "invalid keep_alive_timeout in {path}: expected a number of seconds, got 'abc'"),
        ("backlog = 2048.0", "invalid backlog in {path}: expected a whole number, got 2048.0"),
        ("backlog = true", "invalid backlog in {path}: expected a whole number, got True"),
        ("h2c = 1", "invalid h2c in {path}: expected true or false, got 1"),
        ("h2c = \"maybe\"", "invalid h2c in {path}: expected true or false, got 'maybe'"),
        ("root_path = 5", "invalid root_path in {path}: expected a string, got 5"),
        ("bind = [8000]",
         "invalid bind in {path}: expected a list of values, each a string, got [8000]"),
        ("bind = {host = \"x\"}",
         "invalid bind in {path}: expected a list of values, each a string, got {'host': 'x'}"),
        ("keep_alive_timeout = nan",
         "invalid keep_alive_timeout in {path}: expected a number of seconds, got nan"),
    ],
)
def test_wrong_type_in_file_names_setting_file_and_value(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        read_file(path)
    assert str(caught.value) == message.replace("{path}", path)


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("GATEWAY_BACKLOG", "x", "invalid GATEWAY_BACKLOG='x': expected a whole number"),
        ("GATEWAY_BACKLOG", "1.5", "invalid GATEWAY_BACKLOG='1.5': expected a whole number"),
        ("GATEWAY_KEEP_ALIVE_TIMEOUT", "abc",
         "invalid GATEWAY_KEEP_ALIVE_TIMEOUT='abc': expected a number of seconds"),
        ("GATEWAY_H2C", "maybe",
         "invalid GATEWAY_H2C='maybe': expected true or false (or yes/no, on/off, 1/0)"),
        ("GATEWAY_MAX_BODY_SIZE", "big", "invalid GATEWAY_MAX_BODY_SIZE='big': expected a whole number"),
    ],
)
def test_wrong_value_in_environment_names_the_variable(variable: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_environment({variable: text})
    assert str(caught.value) == message


def test_convert_words_a_flag_error_as_a_flag() -> None:
    with pytest.raises(ConfigError, match=r"^invalid --keep-alive-timeout 'x': expected a number of seconds"):
        convert("keep_alive_timeout", "x", Source.FLAG)
    assert convert("keep_alive_timeout", "3", Source.FLAG) == 3.0


def test_a_bad_password_value_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "keyfile_password = 123456\n")
    with pytest.raises(ConfigError) as caught:
        read_file(path)
    assert "123456" not in str(caught.value)
    assert str(caught.value) == f"invalid keyfile_password in {path}: expected a string, got '***'"


def test_convert_rejects_an_unknown_name_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'backlogg'; did you mean 'backlog'\?"):
        convert("backlogg", "1", Source.ENV)


# --- fields added to Config later are handled without changes here --------------------------


@dataclass
class WiderConfig(Config):
    """Config with fields added: the module must derive them, not list them."""

    pool_size: int = 1
    watch: bool = False
    watch_dirs: list[str] = field(default_factory=list)
    watch_delay: float | None = None
    worker_class: Literal["async", "thread"] = "async"


@pytest.fixture
def wider_config(monkeypatch: pytest.MonkeyPatch):
    settings_file._kinds.cache_clear()
    monkeypatch.setattr(settings_file, "Config", WiderConfig)
    yield
    settings_file._kinds.cache_clear()


@pytest.mark.usefixtures("wider_config")
def test_new_config_fields_are_read_from_file_and_environment(tmp_path: Path) -> None:
    assert setting_names()[-5:] == ["pool_size", "watch", "watch_dirs", "watch_delay", "worker_class"]
    environ = {
        "GATEWAY_POOL_SIZE": "4",
        "GATEWAY_WATCH": "yes",
        "GATEWAY_WATCH_DIRS": "src,lib",
        "GATEWAY_WATCH_DELAY": "",
    }
    assert read_environment(environ) == {
        "pool_size": 4, "watch": True, "watch_dirs": ["src", "lib"], "watch_delay": None,
    }
    path = write(tmp_path, """
        [gateway]
        watch-dirs = ["src", "templates"]
        watch-delay = 0.5
        worker-class = "thread"
    """)
    assert read_file(path) == {
        "watch_dirs": ["src", "templates"], "watch_delay": 0.5, "worker_class": "thread",
    }
    with pytest.raises(ConfigError, match=r"^invalid GATEWAY_POOL_SIZE='x': expected a whole number$"):
        read_environment({"GATEWAY_POOL_SIZE": "x"})
    with pytest.raises(ConfigError, match=r"expected one of async, thread, got 'process'"):
        read_file(write(tmp_path, "worker_class = \"process\"\n"))
    assert default_values()["watch_dirs"] == []


# --- the file: layouts, spelling, unknown keys, syntax ---------------------------------------


def test_dashes_and_underscores_are_the_same_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
        keep-alive-timeout = 7
        max_head_size = 1024
        h2-max-concurrent-streams = 10
    """)
    assert read_file(path) == {
        "keep_alive_timeout": 7.0, "max_head_size": 1024, "h2_max_concurrent_streams": 10,
    }


def test_one_setting_spelt_both_ways_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "keep-alive-timeout = 7\nkeep_alive_timeout = 8\n")
    twice = r"keep_alive_timeout is set twice in .*, as 'keep-alive-timeout' and 'keep_alive_timeout'"
    with pytest.raises(ConfigError, match=twice):
        read_file(path)


def test_settings_under_a_gateway_table(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [gateway]
        app = "main:app"
        keep-alive-timeout = 7

        [database]            # another tool's table in a shared file is left alone
        url = "postgres://x"
    """)
    assert read_file(path) == {"app": "main:app", "keep_alive_timeout": 7.0}


def test_a_plain_key_beside_the_gateway_table_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "backlog = 10\n[gateway]\nkeep_alive_timeout = 7\n")
    with pytest.raises(ConfigError, match=r"'backlog' in .* is outside the \[gateway\] table"):
        read_file(path)


def test_gateway_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'gateway' in .* must be a table"):
        read_file(write(tmp_path, "gateway = 5\n"))


def test_unknown_key_in_file_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, "keepalive_timeout = 7\n")
    with pytest.raises(ConfigError) as caught:
        read_file(path)
    assert str(caught.value) == (
        f"unknown setting 'keepalive_timeout' in {path}; did you mean 'keep_alive_timeout'?"
    )


def test_unknown_key_with_dashes_is_answered_with_dashes(tmp_path: Path) -> None:
    path = write(tmp_path, "[gateway]\nkeepalive-timeout = 7\n")
    suggestion = r"unknown setting 'keepalive-timeout' in .*; did you mean 'keep-alive-timeout'\?$"
    with pytest.raises(ConfigError, match=suggestion):
        read_file(path)


def test_unknown_key_with_nothing_close(tmp_path: Path) -> None:
    path = write(tmp_path, "flavour = \"blue\"\n")
    with pytest.raises(ConfigError, match=r"^unknown setting 'flavour' in .*; settings are named like"):
        read_file(path)


def test_toml_syntax_error_is_one_line_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "backlog = 10\nkeep_alive_timeout = = 7\n")
    with pytest.raises(ConfigError) as caught:
        read_file(path)
    message = str(caught.value)
    assert message.startswith(f"invalid TOML in {path} at line 2, column ")
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_toml_error_at_end_of_file(tmp_path: Path) -> None:
    # tomllib says "end of document" here; newer tomli gives the position past the last line.
    path = write(tmp_path, "bind = [\"a\",\n")
    with pytest.raises(ConfigError, match=r"^invalid TOML in .* at (the end of the file|line 2, column 1): "):
        read_file(path)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=rf"^config file {path} not found$"):
        read_file(path)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory, not a file$"):
        read_file(str(tmp_path))


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(b"root_path = \"/\xff\"\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text"):
        read_file(str(path))


# --- the environment ---------------------------------------------------------------------------


def test_environment_reads_only_gateway_variables() -> None:
    environ = {"PATH": "/bin", "HOME": "/root", "GATEWAY_KEEP_ALIVE_TIMEOUT": "7", "gateway_backlog": "x"}
    assert read_environment(environ) == {"keep_alive_timeout": 7.0}


def test_unknown_gateway_variable_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError) as caught:
        read_environment({"GATEWAY_KEEPALIVE_TIMEOUT": "7"})
    assert str(caught.value) == (
        "unknown setting GATEWAY_KEEPALIVE_TIMEOUT in the environment;"
        " did you mean GATEWAY_KEEP_ALIVE_TIMEOUT?"
    )


def test_unknown_gateway_variable_with_nothing_close() -> None:
    with pytest.raises(ConfigError,
                       match=r"^unknown setting GATEWAY_FLAVOUR in the environment: GATEWAY_\* "):
        read_environment({"GATEWAY_FLAVOUR": "blue"})


def test_gateway_config_names_the_file_and_is_not_a_setting() -> None:
    environ = {"GATEWAY_CONFIG": "/etc/gateway.toml", "GATEWAY_BACKLOG": "10"}
    assert read_environment(environ) == {"backlog": 10}
    assert config_file_from_environment(environ) == "/etc/gateway.toml"
    assert config_file_from_environment({"GATEWAY_CONFIG": ""}) is None
    assert config_file_from_environment({}) is None
    with pytest.raises(ConfigError, match=r"did you mean GATEWAY_CONFIG\?"):
        read_environment({"GATEWAY_CONFG": "x"})


def test_the_real_process_environment_is_read() -> None:
    code = (
        "import os; from gateway.settings_file import read_environment;"
        " print(sorted(read_environment(os.environ).items()))"
    )
    env = dict(os.environ, GATEWAY_KEEP_ALIVE_TIMEOUT="7", GATEWAY_BIND="0.0.0.0:80,[::1]:81")
    env = {k: v for k, v in env.items() if not k.startswith("GATEWAY_") or k in
           ("GATEWAY_KEEP_ALIVE_TIMEOUT", "GATEWAY_BIND")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[('bind', ['0.0.0.0:80', '[::1]:81']), ('keep_alive_timeout', 7.0)]"


# --- layering ----------------------------------------------------------------------------------


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    path = write(tmp_path, """
        keep_alive_timeout = 1
        send_timeout = 1
        body_timeout = 1
    """)
    environ = {"GATEWAY_SEND_TIMEOUT": "2", "GATEWAY_BODY_TIMEOUT": "2", "GATEWAY_LOG_LEVEL": "debug"}
    flags = {"body_timeout": 3.0, "backlog": 99}
    values, sources = layer(default_values(), read_file(path), read_environment(environ), flags)
    assert (values["keep_alive_timeout"], sources["keep_alive_timeout"]) == (1.0, Source.FILE)
    assert (values["send_timeout"], sources["send_timeout"]) == (2.0, Source.ENV)
    assert (values["body_timeout"], sources["body_timeout"]) == (3.0, Source.FLAG)
    assert (values["log_level"], sources["log_level"]) == ("debug", Source.ENV)
    assert (values["backlog"], sources["backlog"]) == (99, Source.FLAG)
    assert (values["header_timeout"], sources["header_timeout"]) == (10.0, Source.DEFAULT)
    assert set(values) == set(setting_names()) == set(sources)
    config = Config(**values)  # the layered values make a valid Config as they stand
    assert config.body_timeout == 3.0 and config.send_timeout == 2.0


def test_a_later_list_replaces_an_earlier_one_whole() -> None:
    values, sources = layer({"bind": ["a:1"]}, {"bind": ["b:2", "c:3"]}, {"bind": ["d:4"]}, {})
    assert values == {"bind": ["d:4"]} and sources == {"bind": "environment"}


def test_source_strings() -> None:
    assert (Source.DEFAULT, Source.FILE, Source.ENV, Source.FLAG) == (
        "default", "file", "environment", "command line",
    )


# --- describe ----------------------------------------------------------------------------------


def _layered(tmp_path: Path) -> tuple[dict[str, object], dict[str, str], str]:
    path = write(tmp_path, """
        [gateway]
        bind = ["0.0.0.0:8000", "[::1]:8443"]
        root-path = "/a \\"quoted\\" # not a comment \\\\ \\u0007"
    """)
    environ = {"GATEWAY_KEEP_ALIVE_TIMEOUT": "7", "GATEWAY_KEYFILE_PASSWORD": "hunter2",
               "GATEWAY_MAX_BODY_SIZE": "1048576"}
    flags = {"app": "main:app", "h2c": False}
    values, sources = layer(default_values(), read_file(path), read_environment(environ), flags)
    return values, sources, path


def test_describe_is_one_aligned_line_per_setting_with_its_source(tmp_path: Path) -> None:
    values, sources, path = _layered(tmp_path)
    text = describe(values, sources, path)
    lines = text.splitlines()
    assert len(lines) == len(setting_names())
    by_name = {line.split()[0] if not line.startswith("#") else line.split()[1]: line for line in lines}
    assert by_name["keep_alive_timeout"].split("=", 1)[1].split() == ["7.0", "#", "from", "environment"]
    assert by_name["app"].endswith("# from command line")
    assert by_name["bind"].endswith(f"# from {path}")
    assert by_name["backlog"].endswith("# default")
    assert by_name["certfile"].startswith("# certfile is not set")
    # The '=' signs line up, and so do the source comments of the short lines.
    equals = {line.index(" = ") for line in lines if not line.startswith("#")}
    assert len(equals) == 1
    comments = {line.index("   # ") for line in lines if "bind" not in line and "root_path" not in line}
    assert len(comments) == 1


def test_describe_hides_passwords(tmp_path: Path) -> None:
    values, sources, path = _layered(tmp_path)
    text = describe(values, sources, path)
    assert "hunter2" not in text
    assert 'keyfile_password          = "***"' in text


def test_describe_parses_back_as_toml(tmp_path: Path) -> None:
    values, sources, path = _layered(tmp_path)
    text = describe(values, sources, path)
    without_comments = "\n".join(
        line.split("   # ")[0] for line in text.splitlines() if not line.startswith("#")
    )
    assert tomllib.loads(without_comments) == tomllib.loads(text)  # the comments are TOML comments
    parsed = tomllib.loads(text)
    expected = {name: value for name, value in values.items() if value is not None}
    expected["keyfile_password"] = "***"
    assert parsed == expected


def test_describe_pasted_into_a_file_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    values, sources, path = _layered(tmp_path)
    copy = write(tmp_path, describe(values, sources, path), name="copy.toml")
    again = read_file(copy)
    unset = {name for name, value in values.items() if value is None}
    assert set(again) == set(values) - unset
    assert {n: v for n, v in again.items() if n != "keyfile_password"} == {
        n: v for n, v in values.items() if n not in unset and n != "keyfile_password"
    }


def test_describe_without_a_file_and_with_values_toml_cannot_write() -> None:
    values = {"app": object(), "keep_alive_timeout": float("inf"), "ciphers": None}
    sources = {"app": Source.FLAG, "keep_alive_timeout": Source.FILE}
    text = describe(values, sources, None)
    assert "# app: a Python object, which TOML cannot write" in text
    assert "# from file" in text
    assert tomllib.loads(text) == {"keep_alive_timeout": float("inf")}
