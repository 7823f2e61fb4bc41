"""Watching source files for `--reload`: which files count, and a thread that reports their changes.

In development the supervisor restarts its workers when the app's code changes. This module only
answers "did a file that matters change?"; what to do about it is the supervisor's job, so nothing
here knows about processes or sockets.

Which files matter follows uvicorn's `--reload-dir`, `--reload-include`, `--reload-exclude` and
`--reload-delay`, so that habits and scripts carry over: `*.py` by default, never dot files or dot
directories (`.git/`, `.venv/`, editor swap files) and never compiled `.pyc`.

Two backends report the changes. watchfiles (inotify, FSEvents, ReadDirectoryChangesW, through
Rust) is used when it imports: it notices an edit within milliseconds and costs nothing while
idle. Without it, or when it fails, a thread compares modification times every `delay` seconds, so
`--reload` works on a bare install too, at the price of some CPU and latency.
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType

from .config import ConfigError
from .logs import error_logger

_DEFAULT_INCLUDES = ("*.py",)
# uvicorn's list, kept as it is so that `--reload-include '.*'` and friends cancel them the same way.
_DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
_CHANGE_ADDED = 1  # watchfiles.Change.added, without importing watchfiles where it is missing

MIN_POLL_INTERVAL = 0.1
# watchfiles yields a batch once no new change came for one step, or `delay` after its first change.
_STEP_MS = 50
# How long one wait inside Rust lasts while nothing changes: the first (empty) yield tells start()
# that the watches are in place, so this is also how long start() takes.
_RUST_TIMEOUT_MS = 250
_READY_TIMEOUT = 5.0
_STOP_TIMEOUT = 1.0
# The poller waits for a scan that finds nothing new before reporting, as watchfiles waits one
# step, so a `git checkout` is one batch; this many extra scans at most, so a file rewritten
# without pause still gets reported.
_SETTLE_SCANS = 3
_NEVER = re.compile(r"(?!)")
_CASE_FLAGS = re.IGNORECASE if os.path.normcase("A") == "a" else 0


def default_includes() -> list[str]:
    """The patterns watched when the user names none: Python source."""
    return list(_DEFAULT_INCLUDES)


def default_excludes() -> list[str]:
    """uvicorn's patterns that are never watched: dot files and directories, .pyc, swap files."""
    return list(_DEFAULT_EXCLUDES)


def merge_patterns(include: Iterable[str], exclude: Iterable[str]) -> tuple[list[str], list[str]]:
    """The user's patterns added to the defaults, as uvicorn merges them.

    A user include equal to a default exclude takes it out of the excludes (`--reload-include
    '.*'` watches dot files); a user exclude takes an equal include out of the includes, whether a
    default or the user's own (`--reload-exclude '*.py'` stops watching Python files).
    """
    user_includes = [_normalize_pattern(p, "--reload-include") for p in _as_list(include)]
    user_excludes = [_normalize_pattern(p, "--reload-exclude") for p in _as_list(exclude)]
    includes = [p for p in (*_DEFAULT_INCLUDES, *user_includes) if p not in user_excludes]
    excludes = [p for p in _DEFAULT_EXCLUDES if p not in user_includes] + user_excludes
    return list(dict.fromkeys(includes)), list(dict.fromkeys(excludes))


class ChangeWatcher:
    """Reports changes to the files under `dirs` that match the reload patterns, from a thread.

    `start(on_change)` returns once the watches are in place, so a change made after it returns is
    reported. `on_change` gets the sorted absolute paths of one batch: files added, modified and
    deleted, gathered until changes pause (for at most `delay` seconds with watchfiles, one scan of
    `delay` seconds when polling). It runs in the watcher thread; changes made while it runs come
    in the next batch. An exception in it is logged with its traceback and watching goes on; none
    ever leaves the thread. After `stop()` no new batch is delivered.

    `backend` is "watchfiles" or "polling", for the supervisor's log line; it turns to "polling" if
    watchfiles fails (the failure is logged). `dirs`, `includes` and `excludes` are what is watched
    after resolving and merging, for the same log line.
    """

    def __init__(
        self,
        dirs: list[str],
        include: list[str],
        exclude: list[str],
        delay: float,
        *,
        use_watchfiles: bool | None = None,
    ) -> None:
        if not delay >= 0:  # also refuses NaN
            raise ConfigError(f"invalid --reload-delay {delay!r}: must be 0 or more seconds")
        self.dirs = _resolve_dirs(dirs)
        self.includes, self.excludes = merge_patterns(include, exclude)
        self.delay = float(delay)
        self._rules = _PathRules(self.dirs, self.includes, self.excludes)
        self._watchfiles = None if use_watchfiles is False else _import_watchfiles()
        if use_watchfiles and self._watchfiles is None:
            raise ConfigError(
                "--reload with watchfiles: watchfiles is not installed (pip install watchfiles)"
            )
        self.backend = "polling" if self._watchfiles is None else "watchfiles"
        self._on_change: Callable[[list[str]], None] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._snapshot: dict[str, tuple[int, int]] = {}

    def matches(self, path: str) -> bool:
        """Whether a change to `path` (absolute, or relative to the current directory) counts."""
        return self._rules.counts(os.path.abspath(path))

    def start(self, on_change: Callable[[list[str]], None]) -> None:
        """Start the watcher thread; returns once changes from now on will be seen."""
        if self._thread is not None:
            raise RuntimeError("a ChangeWatcher can be started once")
        self._on_change = on_change
        if self.backend == "polling":
            self._snapshot = self._scan()
            self._ready.set()
        self._thread = threading.Thread(target=self._run, name="gateway-reload-watch", daemon=True)
        self._thread.start()
        self._ready.wait(_READY_TIMEOUT)

    def stop(self) -> None:
        """Stop watching; the thread ends within about a second unless `on_change` is still running."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT)

    @property
    def poll_interval(self) -> float:
        return max(MIN_POLL_INTERVAL, self.delay)

    def _run(self) -> None:
        try:
            if self.backend == "watchfiles":
                if self._watch_with_watchfiles():
                    return
                self._snapshot = self._scan()
                self.backend = "polling"
                self._ready.set()
            self._poll()
        except Exception:  # a bug here must not pass silently: without this line reload just stops
            error_logger.exception("reload: the file watcher stopped; changes are no longer noticed")
        finally:
            self._ready.set()

    def _watch_with_watchfiles(self) -> bool:
        """Watch until stopped (True) or until watchfiles fails (False, logged)."""
        assert self._watchfiles is not None
        try:
            for changes in self._watchfiles.watch(
                *_outermost(self.dirs),
                watch_filter=self._counts_change,
                debounce=int(self.delay * 1000),
                step=_STEP_MS,
                stop_event=self._stopping,
                rust_timeout=_RUST_TIMEOUT_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                self._ready.set()
                self._deliver({path for _change, path in changes})
        except Exception:
            if self._stopping.is_set():
                return True
            error_logger.exception(
                "reload: watchfiles failed; polling for changes every %.2gs instead", self.poll_interval
            )
            return False
        return True

    def _counts_change(self, change: object, path: str) -> bool:
        if self._rules.counts(path):
            return True
        # A directory created or moved in (a new package from `git checkout`) can hold its files
        # before its own watch is in place, and then their events never come: look inside.
        return (
            change == _CHANGE_ADDED
            and os.path.isdir(path)
            and not self._rules.excludes_dir(path)
            and next(self._walk(path, set()), None) is not None
        )

    def _poll(self) -> None:
        interval = self.poll_interval
        while not self._stopping.wait(interval):
            try:
                changed = self._scan_changes()
                for _ in range(_SETTLE_SCANS):
                    if not changed or self._stopping.wait(interval):
                        break
                    more = self._scan_changes()
                    if not more:
                        break
                    changed |= more
            except Exception:
                error_logger.exception("reload: scanning for changes failed; trying again")
                continue
            self._deliver(changed)

    def _scan_changes(self) -> set[str]:
        before, after = self._snapshot, self._scan()
        self._snapshot = after
        return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Modification time and size of every file that counts."""
        found: dict[str, tuple[int, int]] = {}
        roots = set(self.dirs)
        for root in self.dirs:
            for path in self._walk(root, roots):
                try:
                    stat = os.stat(path)
                except OSError:  # gone since it was listed: the next scan reports it
                    continue
                found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    def _walk(self, top: str, skip: set[str]) -> Iterator[str]:
        """The files under `top` that count, without entering excluded directories or `skip`.

        The poller skips the other watched directories: each is walked on its own, so an excluded
        parent (`--reload-dir .hidden/src` beside `.`) does not hide one.
        """
        for dirpath, dirnames, filenames in os.walk(top):
            if self._stopping.is_set():
                return
            dirnames[:] = [
                name
                for name in dirnames
                if (path := os.path.join(dirpath, name)) not in skip and not self._rules.excludes_dir(path)
            ]
            for name in filenames:
                path = os.path.join(dirpath, name)
                if self._rules.counts(path):
                    yield path

    def _deliver(self, paths: set[str]) -> None:
        if not paths or self._stopping.is_set() or self._on_change is None:
            return
        try:
            self._on_change(sorted(paths))
        except Exception:
            error_logger.exception("reload: error handling %d changed file(s); still watching", len(paths))


class _PathRules:
    """The include and exclude globs, compiled once, applied to absolute paths.

    Names and directory components are taken relative to the watched directory that holds the
    path, so a project under `~/.local/src` is not excluded by `.*`. A pattern with a `/` in it is
    matched against that relative path (anchored at either end, so `migrations/*.py` matches
    `app/migrations/x.py`) and, made absolute from the current directory, against the absolute
    path; an exclude pattern naming a directory also excludes everything in it.
    """

    def __init__(self, roots: list[str], includes: list[str], excludes: list[str]) -> None:
        self._roots = sorted(roots, key=len, reverse=True)  # the innermost root holding a path wins
        include_names = [p for p in includes if "/" not in p]
        include_paths = [p for p in includes if "/" in p]
        exclude_names = [p for p in excludes if "/" not in p]
        exclude_paths = [p for p in excludes if "/" in p]
        self._include_name = _compile(include_names)
        self._include_relative = _compile(v for p in include_paths if not _absolute(p) for v in (p, "*/" + p))
        self._include_absolute = _compile(_absolute_form(p) for p in include_paths)
        self._exclude_name = _compile(exclude_names)
        self._exclude_relative = _compile(
            v for p in exclude_paths if not _absolute(p) for v in (p, p + "/*", "*/" + p, "*/" + p + "/*")
        )
        self._exclude_absolute = _compile(
            v for p in exclude_paths for v in (_absolute_form(p), _absolute_form(p) + "/*")
        )

    def counts(self, path: str) -> bool:
        parts = self._relative_parts(path)
        if not parts:
            return False
        relative, absolute = "/".join(parts), _posix(path)
        included = (
            self._include_name.match(parts[-1])
            or self._include_relative.match(relative)
            or self._include_absolute.match(absolute)
        )
        return bool(included) and not self._excluded(parts, relative, absolute)

    def excludes_dir(self, path: str) -> bool:
        parts = self._relative_parts(path)
        return bool(parts) and self._excluded(parts, "/".join(parts), _posix(path))

    def _excluded(self, parts: list[str], relative: str, absolute: str) -> bool:
        return (
            any(self._exclude_name.match(part) for part in parts)
            or self._exclude_relative.match(relative) is not None
            or self._exclude_absolute.match(absolute) is not None
        )

    def _relative_parts(self, path: str) -> list[str]:
        for root in self._roots:
            prefix = root if root.endswith(os.sep) else root + os.sep
            if path.startswith(prefix):
                return path[len(prefix) :].split(os.sep)
        return [] if path in self._roots else [os.path.basename(path)]


def _resolve_dirs(dirs: list[str]) -> list[str]:
    if not dirs:
        return [os.getcwd()]
    resolved: list[str] = []
    for directory in _as_list(dirs):
        if not os.path.exists(directory):
            raise ConfigError(f"invalid --reload-dir {directory!r}: no such directory")
        if not os.path.isdir(directory):
            raise ConfigError(f"invalid --reload-dir {directory!r}: not a directory")
        resolved.append(os.path.abspath(directory))
    return list(dict.fromkeys(resolved))


def _outermost(dirs: list[str]) -> list[str]:
    """The watched directories no other one contains: watchfiles watches recursively, once each."""
    return [d for d in dirs if not any(d != o and d.startswith(o.rstrip(os.sep) + os.sep) for o in dirs)]


def _normalize_pattern(pattern: str, flag: str) -> str:
    text = pattern.strip()
    if os.sep != "/":
        text = text.replace(os.sep, "/")
    while text.startswith("./"):
        text = text[2:]
    if len(text) > 1:
        text = text.rstrip("/")
    if not text:
        raise ConfigError(f"invalid {flag} {pattern!r}: empty pattern")
    return text


def _as_list(values: Iterable[str]) -> list[str]:
    # One string where a list belongs would otherwise be read as one pattern per character.
    if isinstance(values, str):
        raise TypeError(f"expected a list of strings, not the string {values!r}")
    return list(values)


def _absolute(pattern: str) -> bool:
    return os.path.isabs(pattern)


def _absolute_form(pattern: str) -> str:
    return _posix(pattern if _absolute(pattern) else os.path.join(os.getcwd(), pattern))


def _posix(path: str) -> str:
    return path if os.sep == "/" else path.replace(os.sep, "/")


def _compile(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex for several globs; case-insensitive where the file system usually is."""
    parts = [f"(?:{fnmatch.translate(p)})" for p in patterns]
    return re.compile("|".join(parts), _CASE_FLAGS) if parts else _NEVER


def _import_watchfiles() -> ModuleType | None:
    try:
        import watchfiles
    except ImportError:
        return None
    return watchfiles
