"""gateway.reload: which file changes `--reload` reports, through both backends.

Real files in tmp_path, real watcher threads. A file that must not be reported is written first,
then a file that must be; the report of the second, alone, shows the first was filtered out
rather than not noticed yet.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.logs import error_logger
from gateway.reload import ChangeWatcher, default_excludes, default_includes

pytestmark = pytest.mark.timeout(20)

DELAY = 0.1
REPORT_WITHIN = 2.0
_sizes = itertools.count(1)


def write(path: Path) -> Path:
    """Create or change `path`; the size changes every time, so even a coarse clock sees it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#" * next(_sizes))
    return path


class Changes:
    """The batches a watcher reports, for the test thread to wait on."""

    def __init__(self, fail_first: bool = False) -> None:
        self.batches: queue.Queue[list[str]] = queue.Queue()
        self.fail_first = fail_first

    def __call__(self, paths: list[str]) -> None:
        self.batches.put(paths)
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("the supervisor could not restart")

    def wait_for(self, wanted: Path | Callable[[str], bool], within: float = REPORT_WITHIN) -> list[str]:
        """Every path reported up to and including the batch with `wanted` in it."""
        found = wanted if callable(wanted) else (lambda path: path == str(wanted))
        seen: list[str] = []
        deadline = time.monotonic() + within
        while True:
            try:
                batch = self.batches.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{wanted} not reported within {within}s; reported: {seen}")
            seen.extend(batch)
            if any(found(path) for path in batch):
                return seen

    def next_batch(self, within: float = REPORT_WITHIN) -> list[str]:
        try:
            return self.batches.get(timeout=within)
        except queue.Empty:
            pytest.fail(f"nothing reported within {within}s")

    def none_within(self, seconds: float) -> None:
        try:
            batch = self.batches.get(timeout=seconds)
        except queue.Empty:
            return
        pytest.fail(f"unexpected report: {batch}")


@pytest.fixture(params=["watchfiles", "polling"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "watchfiles":
        pytest.importorskip("watchfiles")
    return request.param


Watch = Callable[..., tuple[ChangeWatcher, Changes]]


@pytest.fixture
def watch(backend: str) -> Iterator[Watch]:
    """Start a watcher on the given directories with the backend under test; stopped afterwards."""
    started: list[ChangeWatcher] = []

    def start(
        dirs: list[Path], include: tuple[str, ...] = (), exclude: tuple[str, ...] = (), **kwargs: bool
    ) -> tuple[ChangeWatcher, Changes]:
        watcher = ChangeWatcher(
            [str(d) for d in dirs],
            list(include),
            list(exclude),
            DELAY,
            use_watchfiles=backend == "watchfiles",
        )
        changes = Changes(**kwargs)
        started.append(watcher)
        watcher.start(changes)
        assert watcher.backend == backend
        return watcher, changes

    yield start
    for watcher in started:
        watcher.stop()


@pytest.fixture
def error_records() -> Iterator[list[logging.LogRecord]]:
    """What gateway.error logs, whatever other tests did to its handlers and propagation."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    error_logger.addHandler(handler)
    try:
        yield records
    finally:
        error_logger.removeHandler(handler)


def test_edit_to_python_file_is_reported(tmp_path: Path, watch: Watch) -> None:
    app = write(tmp_path / "app.py")
    _, changes = watch([tmp_path])
    write(app)
    assert changes.wait_for(app) == [str(app)]


def test_other_files_dot_dirs_swap_files_and_bytecode_are_not_reported(tmp_path: Path, watch: Watch) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "__pycache__").mkdir()
    app = write(tmp_path / "app.py")
    _, changes = watch([tmp_path])
    for name in (
        "notes.txt",
        "index.html",
        ".app.py.swp",
        ".git/hooks.py",
        ".hidden.py",
        "app.pyc",
        "__pycache__/app.cpython-310.pyc",
        "~app.py",
        "app.py~",
    ):
        write(tmp_path / name)
    changes.none_within(DELAY * 4)
    write(app)
    assert changes.wait_for(app) == [str(app)]


def test_created_and_deleted_files_are_reported(tmp_path: Path, watch: Watch) -> None:
    old = write(tmp_path / "pkg" / "old.py")
    _, changes = watch([tmp_path])
    new = write(tmp_path / "pkg" / "new.py")
    assert changes.wait_for(new) == [str(new)]
    old.unlink()
    assert changes.wait_for(old) == [str(old)]


def test_package_directory_moved_in_is_reported(tmp_path: Path, watch: Watch) -> None:
    """No event comes for the files of a directory moved in (as `git checkout` or `mv` bring a
    package); the directory stands for them."""
    project = tmp_path / "project"
    project.mkdir()
    write(tmp_path / "elsewhere" / "package" / "module.py")
    _, changes = watch([project])
    (tmp_path / "elsewhere" / "package").rename(project / "package")
    package = project / "package"
    changes.wait_for(lambda path: path in (str(package), str(package / "module.py")))


def test_new_directory_with_a_module_is_reported(tmp_path: Path, watch: Watch) -> None:
    _, changes = watch([tmp_path])
    package = tmp_path / "package"
    write(package / "module.py")
    changes.wait_for(lambda path: path in (str(package), str(package / "module.py")))


def test_moved_in_directory_without_source_is_not_reported(tmp_path: Path, watch: Watch) -> None:
    project = tmp_path / "project"
    app = write(project / "app.py")
    write(tmp_path / "elsewhere" / "static" / "logo.svg")
    _, changes = watch([project])
    (tmp_path / "elsewhere" / "static").rename(project / "static")
    write(app)
    assert changes.wait_for(app) == [str(app)]


def test_changes_made_together_come_in_one_batch(tmp_path: Path, watch: Watch) -> None:
    files = [write(tmp_path / f"m{i}.py") for i in range(3)]
    _, changes = watch([tmp_path])
    for path in files:
        write(path)
    assert changes.next_batch() == [str(path) for path in files]


def test_polling_reports_a_burst_over_several_scans_as_one_batch(tmp_path: Path) -> None:
    """Writes 0.05 s apart for 0.5 s span scans 0.3 s apart; the poller waits for a quiet scan."""
    watcher = ChangeWatcher([str(tmp_path)], [], [], 0.3, use_watchfiles=False)
    changes = Changes()
    watcher.start(changes)
    try:
        files = [tmp_path / f"m{i:02}.py" for i in range(11)]
        for path in files:
            write(path)
            time.sleep(0.05)
        assert changes.next_batch(within=3.0) == [str(path) for path in files]
    finally:
        watcher.stop()


def test_include_adds_a_pattern(tmp_path: Path, watch: Watch) -> None:
    page = write(tmp_path / "templates" / "index.html")
    _, changes = watch([tmp_path], include=("*.html",))
    write(page)
    assert changes.wait_for(page) == [str(page)]


def test_include_with_a_directory_matches_the_relative_path(tmp_path: Path, watch: Watch) -> None:
    ignored = write(tmp_path / "notes.txt")
    wanted = write(tmp_path / "app" / "templates" / "mail.txt")
    _, changes = watch([tmp_path], include=("templates/*.txt",))
    write(ignored)
    write(wanted)
    assert changes.wait_for(wanted) == [str(wanted)]


def test_exclude_of_a_default_include_drops_it(tmp_path: Path, watch: Watch) -> None:
    app = write(tmp_path / "app.py")
    page = write(tmp_path / "index.html")
    watcher, changes = watch([tmp_path], include=("*.html",), exclude=("*.py",))
    assert "*.py" not in watcher.includes
    write(app)
    write(page)
    assert changes.wait_for(page) == [str(page)]


def test_exclude_of_a_directory_drops_what_is_in_it(tmp_path: Path, watch: Watch) -> None:
    migration = write(tmp_path / "db" / "migrations" / "0001.py")
    generated = write(tmp_path / "build" / "out.py")
    app = write(tmp_path / "app.py")
    _, changes = watch([tmp_path], exclude=("migrations", "./build/"))
    write(migration)
    write(generated)
    write(app)
    assert changes.wait_for(app) == [str(app)]


def test_dot_directory_above_the_watched_one_does_not_exclude(tmp_path: Path, watch: Watch) -> None:
    root = tmp_path / ".local" / "src"
    app = write(root / "app.py")
    _, changes = watch([root])
    write(app)
    assert changes.wait_for(app) == [str(app)]


def test_stop_is_prompt_idempotent_and_ends_reports(tmp_path: Path, watch: Watch) -> None:
    app = write(tmp_path / "app.py")
    watcher, changes = watch([tmp_path])
    began = time.monotonic()
    watcher.stop()
    assert time.monotonic() - began < 2.0
    assert not [t for t in threading.enumerate() if t.name == "gateway-reload-watch"]
    watcher.stop()
    write(app)
    changes.none_within(DELAY * 4)


def test_error_in_on_change_is_logged_and_watching_goes_on(
    tmp_path: Path, watch: Watch, error_records: list[logging.LogRecord]
) -> None:
    first = write(tmp_path / "first.py")
    second = write(tmp_path / "second.py")
    _, changes = watch([tmp_path], fail_first=True)
    write(first)
    changes.wait_for(first)
    write(second)
    assert changes.wait_for(second) == [str(second)]
    assert len(error_records) == 1
    assert error_records[0].exc_info is not None
    assert "could not restart" in str(error_records[0].exc_info[1])


def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    ChangeWatcher([str(tmp_path)], [], [], DELAY).stop()


def test_defaults_are_uvicorns() -> None:
    assert default_includes() == ["*.py"]
    assert default_excludes() == [".*", ".py[cod]", ".sw.*", "~*"]
    default_includes().append("*.txt")  # a copy each time: callers may extend it
    assert default_includes() == ["*.py"]


def test_user_patterns_are_added_to_the_defaults(tmp_path: Path) -> None:
    watcher = ChangeWatcher([str(tmp_path)], ["*.html"], ["*_test.py"], DELAY)
    assert watcher.includes == ["*.py", "*.html"]
    assert watcher.excludes == [".*", ".py[cod]", ".sw.*", "~*", "*_test.py"]
    assert watcher.matches(str(tmp_path / "templates" / "a.html"))
    assert not watcher.matches(str(tmp_path / "app_test.py"))


def test_include_equal_to_a_default_exclude_takes_it_out(tmp_path: Path) -> None:
    watcher = ChangeWatcher([str(tmp_path)], [".*"], [], DELAY)
    assert ".*" not in watcher.excludes
    assert watcher.matches(str(tmp_path / ".env"))
    assert watcher.matches(str(tmp_path / ".config" / "settings.py"))


def test_missing_dir_raises_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError) as raised:
        ChangeWatcher([str(tmp_path), missing], [], [], DELAY)
    assert str(raised.value) == f"invalid --reload-dir {missing!r}: no such directory"
    a_file = str(write(tmp_path / "app.py"))
    with pytest.raises(ConfigError, match="not a directory"):
        ChangeWatcher([a_file], [], [], DELAY)


def test_no_dirs_means_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ChangeWatcher([], [], [], DELAY).dirs == [os.getcwd()]


def test_bad_delay_and_patterns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--reload-delay"):
        ChangeWatcher([str(tmp_path)], [], [], -1)
    with pytest.raises(ConfigError, match="empty pattern"):
        ChangeWatcher([str(tmp_path)], [" "], [], DELAY)
    with pytest.raises(TypeError):
        ChangeWatcher([str(tmp_path)], "*.html", [], DELAY)  # type: ignore[arg-type]


def test_polling_can_be_chosen(tmp_path: Path) -> None:
    assert ChangeWatcher([str(tmp_path)], [], [], DELAY, use_watchfiles=False).backend == "polling"
