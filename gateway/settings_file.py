"""Settings from a TOML file and from `GATEWAY_*` environment variables, and where each came from.

A deployment sets gateway up in layers: defaults, a checked-in file, the environment of the
container, and flags typed by hand. This module reads the file and the environment, turns their
text into the types `Config` declares, layers the four with one precedence rule
(command line > environment > file > default), and prints the result with the source of each value,
so "why is keep_alive_timeout 7?" has an answer.

It knows no setting by name: the names and types come from `dataclasses.fields(Config)` and
`typing.get_type_hints(Config)`, so a field added to `Config` can be set from a file and from the
environment without touching this module. Types it converts: `bool`, `int`, `float`, `str`,
`X | None`, `list[X]` of those, `Literal[...]` of strings, and `Any` (read as a string, as `app` is).
A field of any other type is passed through as given and left to `Config` to check.

Every mistake a user can make here (a misspelt name, a value of the wrong type, a TOML syntax error,
a missing file) is a `ConfigError` with a one-line message naming the setting and where it came
from; nothing raises a traceback at the user.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from .config import Config, ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ENV_PREFIX = "GATEWAY_"
CONFIG_FILE_VARIABLE = "GATEWAY_CONFIG"
SETTINGS_TABLE = "gateway"

# GATEWAY_* variables that are not settings; read_environment skips them instead of calling them
# misspelt. GATEWAY_CONFIG names the file, which must be known before the file is read.
NOT_SETTINGS = frozenset({CONFIG_FILE_VARIABLE})

# A field whose name contains one of these is never printed.
_SECRET_MARKERS = ("password", "secret", "token")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
# Words in a float field's name that mean its unit is seconds, for the error message: every
# float Config has is a timeout, an interval or a time (address_block_time).
_SECONDS_MARKERS = ("time", "interval")


class Source:
    """Where a setting's value came from, as `layer` records it and `describe` prints it.

    Plain strings, so a sources dict prints, compares and serialises without ceremony."""

    DEFAULT = "default"
    FILE = "file"
    ENV = "environment"
    FLAG = "command line"


@dataclasses.dataclass(frozen=True)
class _Kind:
    """What a field accepts, reduced from its type hint to what conversion needs."""

    base: type | None  # bool, int, float, str or list; None: passed through unconverted
    optional: bool = False  # `X | None`: an empty string means None
    item: _Kind | None = None  # the element kind of a list
    choices: tuple[str, ...] = ()  # Literal["a", "b"]

    def expected(self, name: str, origin: str) -> str:
        """The words after "expected" in an error message."""
        if self.base is list and self.item is not None:
            plural = self.item.expected(name, origin)
            if origin == Source.ENV:
                return f"comma-separated values, each {plural}"
            return f"a list of values, each {plural}"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.base is bool:
            return "true or false" if origin != Source.ENV else "true or false (or yes/no, on/off, 1/0)"
        if self.base is int:
            return "a whole number"
        if self.base is float:
            return "a number of seconds" if any(m in name for m in _SECONDS_MARKERS) else "a number"
        return "a string"


def _kind_of(hint: Any) -> _Kind:
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(hint)
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1 and len(others) < len(args):
            return dataclasses.replace(_kind_of(others[0]), optional=True)
        return _Kind(None)
    if hint is Any:
        # `app` is Any because Python callers may pass the app object itself; text names it.
        return _Kind(str, optional=True)
    if origin is Literal:
        choices = typing.get_args(hint)
        if all(isinstance(choice, str) for choice in choices):
            return _Kind(str, choices=choices)
        return _Kind(None)
    if origin is list or hint is list:
        args = typing.get_args(hint)
        item = _kind_of(args[0]) if args else _Kind(str)
        if item.base in (None, list) or item.optional:
            return _Kind(None)
        return _Kind(list, item=item)
    if hint in (bool, int, float, str):
        return _Kind(hint)
    return _Kind(None)


@functools.cache
def _kinds() -> dict[str, _Kind]:
    # get_type_hints resolves the string annotations that `from __future__ import annotations`
    # leaves on Config; the dict is built once, since Config's fields are fixed at import.
    hints = typing.get_type_hints(Config)
    return {field.name: _kind_of(hints[field.name]) for field in dataclasses.fields(Config) if field.init}


def setting_names() -> list[str]:
    """Every setting, in the order `Config` declares them: the names a file and the environment use."""
    return [field.name for field in dataclasses.fields(Config) if field.init]


def default_values() -> dict[str, object]:
    """Each setting's default, from `Config` itself, as the bottom layer for `layer`."""
    defaults: dict[str, object] = {}
    for field in dataclasses.fields(Config):
        if not field.init:
            continue
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def _is_secret(name: str) -> bool:
    return any(marker in name for marker in _SECRET_MARKERS)


def convert(name: str, value: object, origin: str) -> object:
    """Turn `value` into the type of setting `name`.

    `value` is a TOML value (already typed) or text (from the environment or a flag); a string
    from any origin is parsed the same way, so `backlog = "2048"` in a file works as
    `GATEWAY_BACKLOG=2048` does. An empty string is None for an `X | None` setting, and an empty
    list for a list setting; a list may be a TOML array or comma-separated text.

    `origin` is `Source.ENV`, `Source.FLAG`, or the path of the file the value was read from; it
    only shapes the error message, which names the setting the way the user wrote it there.
    """
    kind = _kinds().get(name)
    if kind is None:
        raise ConfigError(f"unknown setting {name!r}" + _did_you_mean(name, setting_names()))
    try:
        return _convert(kind, value)
    except ValueError:
        shown = "***" if _is_secret(name) else value
        expected = kind.expected(name, origin)
        if origin == Source.ENV:
            raise ConfigError(f"invalid {ENV_PREFIX}{name.upper()}={shown!r}: expected {expected}") from None
        if origin == Source.FLAG:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"invalid {flag} {shown!r}: expected {expected}") from None
        raise ConfigError(f"invalid {name} in {origin}: expected {expected}, got {shown!r}") from None


def _convert(kind: _Kind, value: object) -> object:
    """The conversion itself; ValueError for a value of the wrong type, worded by the caller."""
    if isinstance(value, str) and value == "" and kind.optional:
        return None
    if kind.base is None:
        return value
    if kind.base is list:
        assert kind.item is not None
        if isinstance(value, str):
            items: list[object] = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise ValueError
        return [_convert(kind.item, item) for item in items]
    if kind.base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE:
            return True
        if isinstance(value, str) and value.strip().lower() in _FALSE:
            return False
        raise ValueError
    if kind.base is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            return int(value.strip(), 10)
        raise ValueError
    if kind.base is float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            raise ValueError
        if math.isnan(number):
            raise ValueError
        return number
    # str, with or without choices
    if not isinstance(value, str):
        raise ValueError
    if kind.choices and value not in kind.choices:
        raise ValueError
    return value


def _did_you_mean(wrong: str, candidates: list[str], spell: Callable[[str], str] = repr) -> str:
    """'; did you mean ...?' for the closest candidate, spelt as the user would write it, or
    nothing when none is close."""
    matches = difflib.get_close_matches(wrong, candidates, n=1, cutoff=0.6)
    return f"; did you mean {spell(matches[0])}?" if matches else ""


def read_file(path: str) -> dict[str, object]:
    """Settings from the TOML file at `path`, converted to their types, keyed by setting name.

    Two layouts are accepted, so gateway can have a file of its own or share one:

        keep_alive_timeout = 7              # settings at the top level
        [gateway]                           # or all of them under a [gateway] table;
        keep-alive-timeout = 7              # other tables in the file are then left alone

    Keys may be spelt with dashes, like the flags, or underscores, like `Config`. An unknown key
    is an error with a close-match suggestion rather than ignored, because a misspelt timeout that
    silently keeps its default is found only in production.
    """
    table = _settings_table(_load_toml(path), path)
    values: dict[str, object] = {}
    spelt: dict[str, str] = {}
    known = _kinds()
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            spell = _spell_with_dashes if "-" in key else repr
            suggestion = _did_you_mean(name, setting_names(), spell)
            raise ConfigError(
                f"unknown setting {key!r} in {path}"
                + (suggestion or "; settings are named like the flags, for example keep_alive_timeout")
            )
        if name in spelt:
            raise ConfigError(f"{name} is set twice in {path}, as {spelt[name]!r} and {key!r}: keep one")
        spelt[name] = key
        values[name] = convert(name, value, path)
    return values


def _spell_with_dashes(name: str) -> str:
    return repr(name.replace("_", "-"))


def _load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_error(path, exc)) from None


# tomllib and tomli end their messages with "(at line L, column C)" or "(at end of document)";
# Python 3.14 also offers lineno/colno, read first when present.
_POSITION_RE = re.compile(
    r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _syntax_error(path: str, exc: ValueError) -> str:
    what = getattr(exc, "msg", None) or str(exc)
    line, col = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    match = _POSITION_RE.match(what)
    if match:
        what, line, col = match["what"], match["line"] or line, match["col"] or col
    what = what[:1].lower() + what[1:]
    where = f"line {line}, column {col}" if line else "the end of the file"
    return f"invalid TOML in {path} at {where}: {what}"


def _settings_table(document: dict[str, Any], path: str) -> dict[str, Any]:
    section = document.get(SETTINGS_TABLE)
    if section is None:
        return document
    if not isinstance(section, dict):
        raise ConfigError(
            f"'{SETTINGS_TABLE}' in {path} must be a table: write [{SETTINGS_TABLE}] above the settings"
        )
    # Other tables belong to other tools sharing the file; a plain key beside [gateway] is a
    # setting put in the wrong place, and ignoring it would hide it.
    for key, value in document.items():
        if key != SETTINGS_TABLE and not isinstance(value, dict):
            raise ConfigError(
                f"{key!r} in {path} is outside the [{SETTINGS_TABLE}] table: move it under [{SETTINGS_TABLE}]"
            )
    return section


def read_environment(environ: Mapping[str, str]) -> dict[str, object]:
    """Settings from `GATEWAY_<NAME>` variables (`GATEWAY_KEEP_ALIVE_TIMEOUT=7` ->
    `{"keep_alive_timeout": 7.0}`), converted to their types.

    Any other `GATEWAY_*` variable is an error with a suggestion, for the same reason as an
    unknown key in the file; `NOT_SETTINGS` (GATEWAY_CONFIG) is skipped. Pass `os.environ`, or a
    plain dict in tests.
    """
    values: dict[str, object] = {}
    known = _kinds()
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in NOT_SETTINGS:
            continue
        name = variable[len(ENV_PREFIX):].lower()
        if name not in known:
            # Matched without the prefix, which every candidate shares and would make all look close.
            candidates = setting_names() + [n[len(ENV_PREFIX):].lower() for n in sorted(NOT_SETTINGS)]
            suggestion = _did_you_mean(name, candidates, lambda n: ENV_PREFIX + n.upper())
            raise ConfigError(
                f"unknown setting {variable} in the environment"
                + (suggestion or f": {ENV_PREFIX}* variables are read as"
                   f" gateway settings ({ENV_PREFIX}KEEP_ALIVE_TIMEOUT for --keep-alive-timeout);"
                   " unset or rename it")
            )
        values[name] = convert(name, environ[variable], Source.ENV)
    return values


def config_file_from_environment(environ: Mapping[str, str]) -> str | None:
    """The file GATEWAY_CONFIG names, or None when it is unset or empty."""
    return environ.get(CONFIG_FILE_VARIABLE) or None


def layer(
    defaults: Mapping[str, object],
    file: Mapping[str, object],
    env: Mapping[str, object],
    flags: Mapping[str, object],
) -> tuple[dict[str, object], dict[str, str]]:
    """Merge the four layers, command line > environment > file > default, and record the
    `Source` of each value.

    A later layer replaces a value whole (a list from the environment replaces the file's list).
    `flags` must hold only the flags the user gave, not argparse's defaults, or every default
    would shadow the environment and the file.
    """
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for source, settings in (
        (Source.DEFAULT, defaults),
        (Source.FILE, file),
        (Source.ENV, env),
        (Source.FLAG, flags),
    ):
        for name, value in settings.items():
            values[name] = value
            sources[name] = source
    return values, sources


def describe(values: Mapping[str, object], sources: Mapping[str, str], file_path: str | None) -> str:
    """The settings in effect, one line each, as TOML with the source in a trailing comment:

        keep_alive_timeout = 7.0        # from environment

    Pasted into a file it is valid TOML. A setting with no value (None) has no TOML form and is
    written as a comment line. Secrets are written as "***".
    """
    known = _kinds()
    names = [name for name in setting_names() if name in values]
    names += sorted(name for name in values if name not in known)
    width = max((len(name) for name in names), default=0)
    rows: list[tuple[str, str]] = []
    for name in names:
        value = values[name]
        text = '"***"' if _is_secret(name) and value is not None else _toml_value(value)
        if value is None:
            left = f"# {name} is not set"
        elif text is None:
            left = f"# {name}: a Python {type(value).__name__}, which TOML cannot write"
        else:
            left = f"{name:<{width}} = {text}"
        rows.append((left, _source_comment(sources.get(name, Source.DEFAULT), file_path)))
    # Keep comments in one column, unless a long value (many binds) would push every line out.
    column = min(max((len(left) for left, _ in rows), default=0), width + 24)
    return "\n".join(f"{left:<{column}}   {comment}" for left, comment in rows) + "\n"


def _source_comment(source: str, file_path: str | None) -> str:
    if source == Source.DEFAULT:
        return "# default"
    if source == Source.FILE and file_path:
        return f"# from {file_path}"
    return f"# from {source}"


def _toml_value(value: object) -> str | None:
    """`value` as TOML writes it, or None when TOML has no way to write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # 5.0, 1e-05, 1e+20: all valid TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        items = [_toml_value(item) for item in value]
        if any(item is None for item in items):
            return None
        return "[" + ", ".join(typing.cast(list[str], items)) + "]"
    return None


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    # TOML basic strings forbid raw control characters, DEL included (TOML 1.0, "String").
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
