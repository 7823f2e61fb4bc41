"""`--log-config FILE`: a logging configuration file, read as uvicorn reads it.

A `.json` or `.yaml`/`.yml` file holds a `logging.config.dictConfig` dictionary; any other file
is an INI file for `logging.config.fileConfig`. Loggers that already exist (gateway's own) stay
enabled unless the file says otherwise: uvicorn passes `disable_existing_loggers=False` for INI
files, and gateway does the same for dictionaries that do not set it, so that a file naming only
the root logger still gets gateway's lines. Whatever makes a file unusable is one ConfigError
line, raised before anything is bound.
"""

from __future__ import annotations

import json
import logging.config
from typing import Any

from .config import ConfigError

ROOT = "root"


def apply_log_config(path: str) -> frozenset[str]:
    """Configure logging from `path`; returns the names of the loggers the file configures
    (`ROOT` for the root logger), which gateway then leaves as the file set them."""
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                return _apply_dict(path, json.load(file))
        if path.endswith((".yaml", ".yml")):
            return _apply_dict(path, _load_yaml(path))
        # fileConfig always configures the root logger: its [logger_root] section is required.
        logging.config.fileConfig(path, disable_existing_loggers=False)
        return frozenset((ROOT,))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"invalid --log-config {path!r}: {_describe(exc)}") from None


def _load_yaml(path: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"--log-config {path!r} is YAML, which needs PyYAML: pip install pyyaml"
        ) from None
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def _apply_dict(path: str, config: Any) -> frozenset[str]:
    if not isinstance(config, dict):
        raise ConfigError(
            f"invalid --log-config {path!r}: expected a mapping for logging.config.dictConfig,"
            " starting with 'version: 1'"
        )
    config.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(config)
    names = {name or ROOT for name in config.get("loggers") or ()}
    if config.get("root") is not None:
        names.add(ROOT)
    return frozenset(names)


def _describe(exc: Exception) -> str:
    """The error on one line, with the cause dictConfig hides behind "Unable to configure"."""
    if isinstance(exc, KeyError):
        text = f"no {exc} section or key"
    else:
        text = str(exc) or type(exc).__name__
    if exc.__cause__ is not None:
        text += f": {exc.__cause__}"
    return " ".join(text.split())


def covers(configured: frozenset[str], name: str) -> bool:
    """Whether the file configured logger `name` or an ancestor it propagates to."""
    if not configured:
        return False
    if ROOT in configured:
        return True
    parts = name.split(".")
    return any(".".join(parts[:end]) in configured for end in range(1, len(parts) + 1))
