"""Trusting the development CA on this machine, and taking that trust back.

Browsers on Linux do not read the system's CA bundle: Chromium and Firefox each keep an NSS
database, changed here with NSS's own ``certutil`` (libnss3-tools), as mkcert does. curl,
Python's ``ssl`` defaults and most other clients read Debian's system store, which only root
may change (a file in /usr/local/share/ca-certificates, then ``update-ca-certificates``).

Nothing here runs unless the user asked for it (``gateway certs --install`` / ``--uninstall``).
The CA is entered under a name made from its fingerprint, so uninstalling removes exactly the
CA that was installed, and a newer CA never collides with an older one. A store that cannot be
changed is reported with the reason and the others are still done.
"""

from __future__ import annotations

import enum
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..config import ConfigError

SYSTEM_STORE = Path("/usr/local/share/ca-certificates")
# Where update-ca-certificates links what it takes from SYSTEM_STORE.
_SYSTEM_LINKS = Path("/etc/ssl/certs")
_FIREFOX_PROFILES = (".mozilla/firefox/*", "snap/firefox/common/.mozilla/firefox/*")
_CHROMIUM_DATABASE = Path(".pki/nssdb")
_NSS_STORES = "browsers' NSS databases (Chromium, Firefox)"
_TOOL_TIMEOUT = 60.0


class Outcome(enum.Enum):
    ADDED = "added to"
    ALREADY = "already trusted in"
    REMOVED = "removed from"
    TRUSTED = "trusted in"
    ABSENT = "not in"
    SKIPPED = "skipped"
    FAILED = "failed for"


@dataclass(frozen=True)
class StoreReport:
    """What happened to one trust store, in words a user can act on."""

    outcome: Outcome
    store: str
    detail: str = ""
    browser: bool = False  # a running browser sees a change only after a restart

    def line(self) -> str:
        text = f"{self.outcome.value} {self.store}"
        return f"{text}: {self.detail}" if self.detail else text


class TrustError(ConfigError):
    """The development CA to trust or distrust cannot be read."""


@dataclass(frozen=True)
class DevCA:
    """The CA certificate file and the names it is entered under in each store."""

    path: Path
    nickname: str

    @property
    def system_file(self) -> Path:
        return SYSTEM_STORE / f"{self.nickname.replace(' ', '-')}.crt"


def load_ca(path: Path) -> DevCA:
    """The CA in ``path``, named by its fingerprint (as mkcert names its CA by serial)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise TrustError(f"no development CA at '{path}': give --certs-dir where it is") from None
    except OSError as exc:
        raise TrustError(f"cannot read the development CA '{path}': {exc.strerror}") from None
    except ValueError:
        raise TrustError(f"'{path}' is not a PEM certificate: delete its directory to start "
                         "over, or give --certs-dir where the CA is") from None
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()[:16]
    return DevCA(path=path, nickname=f"gateway development CA {fingerprint}")


def install(ca: DevCA, home: Path) -> list[StoreReport]:
    """Add the CA to the user's browsers and, as root, to the system store."""
    return [*_each_nss_database(ca, home, _nss_install, create=True), _system_install(ca)]


def uninstall(ca: DevCA, home: Path) -> list[StoreReport]:
    """Remove what ``install`` added: the CA under its nickname, and its system file."""
    return [*_each_nss_database(ca, home, _nss_uninstall, create=False), _system_uninstall(ca)]


def status(ca: DevCA, home: Path) -> list[StoreReport]:
    """Where the CA is trusted now; changes nothing."""
    return [*_each_nss_database(ca, home, _nss_status, create=False), _system_status(ca)]


def is_trusted_somewhere(reports: list[StoreReport]) -> bool:
    return any(report.outcome in (Outcome.ADDED, Outcome.ALREADY) for report in reports)


def browsers_changed(reports: list[StoreReport]) -> bool:
    return any(report.browser and report.outcome in (Outcome.ADDED, Outcome.REMOVED)
               for report in reports)


_NSSAction = Callable[[str, DevCA, str, str], StoreReport]


def _each_nss_database(ca: DevCA, home: Path, action: _NSSAction, create: bool) -> list[StoreReport]:
    certutil = shutil.which("certutil")
    if certutil is None:
        return [StoreReport(Outcome.SKIPPED, _NSS_STORES,
                            "certutil not found; install it with 'apt-get install libnss3-tools'")]
    reports = []
    chromium = home / _CHROMIUM_DATABASE
    created = ""
    if create and not (chromium / "cert9.db").exists():
        failure = _create_nss_database(certutil, chromium, home)
        if failure:
            reports.append(StoreReport(Outcome.FAILED, f"Chromium's NSS database {chromium}",
                                       f"cannot create it: {failure}"))
        else:
            created = " (created)"
    databases = [(f"Chromium's NSS database {chromium}{created}", chromium)]
    for pattern in _FIREFOX_PROFILES:
        databases += [(f"Firefox profile {profile}", profile) for profile in sorted(home.glob(pattern))]
    for label, directory in databases:
        if (directory / "cert9.db").is_file():
            reports.append(action(certutil, ca, f"sql:{directory}", label))
        elif (directory / "cert8.db").is_file():
            reports.append(action(certutil, ca, f"dbm:{directory}", label))
    if not reports:
        reports.append(StoreReport(Outcome.ABSENT, _NSS_STORES, f"none in {home}"))
    return [replace(report, browser=True) for report in reports]


def _create_nss_database(certutil: str, directory: Path, home: Path) -> str:
    """Make Chromium's database as Chromium would; '' when done, else why not."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return str(exc.strerror or exc)
    failure = _run(certutil, "-N", "-d", f"sql:{directory}", "--empty-password")
    if not failure:
        _give_to_home_owner(home / _CHROMIUM_DATABASE.parts[0], home)
    return failure


def _give_to_home_owner(top: Path, home: Path) -> None:
    # Under sudo, HOME may still be the user's: files root made there would lock the user's
    # own browser out of its database.
    owner = home.stat()
    if os.geteuid() != 0 or owner.st_uid == 0:
        return
    for path in [top, *top.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _nss_status(certutil: str, ca: DevCA, database: str, label: str) -> StoreReport:
    trusted = _nss_trusts(certutil, ca, database)
    return StoreReport(Outcome.TRUSTED if trusted else Outcome.ABSENT, label)


def _nss_install(certutil: str, ca: DevCA, database: str, label: str) -> StoreReport:
    if _nss_trusts(certutil, ca, database):
        return StoreReport(Outcome.ALREADY, label, "nothing changed")
    failure = _run(certutil, "-A", "-d", database, "-t", "C,,", "-n", ca.nickname, "-i", str(ca.path))
    if failure:
        return StoreReport(Outcome.FAILED, label, failure)
    if not _nss_trusts(certutil, ca, database):
        # certutil succeeds, yet keeps a certificate it already holds under its first nickname.
        return StoreReport(Outcome.FAILED, label, f"it holds this CA under another name (such as "
                           f"gateway-dev-ca, from gateway's older instructions); remove that with "
                           f"'certutil -D -d {database} -n NAME' and run this again")
    return StoreReport(Outcome.ADDED, label)


def _nss_uninstall(certutil: str, ca: DevCA, database: str, label: str) -> StoreReport:
    if _run(certutil, "-L", "-d", database, "-n", ca.nickname):
        return StoreReport(Outcome.ABSENT, label, "nothing to remove")
    failure = _run(certutil, "-D", "-d", database, "-n", ca.nickname)
    if failure:
        return StoreReport(Outcome.FAILED, label, failure)
    return StoreReport(Outcome.REMOVED, label)


def _nss_trusts(certutil: str, ca: DevCA, database: str) -> bool:
    # Verifying it as an SSL CA checks both that it is there and that it is trusted.
    return not _run(certutil, "-V", "-d", database, "-u", "L", "-n", ca.nickname)


def _system_label(ca: DevCA) -> str:
    return f"the system store ({ca.system_file})"


def _system_link(ca: DevCA) -> Path:
    return _SYSTEM_LINKS / f"{ca.system_file.stem}.pem"


def _system_status(ca: DevCA) -> StoreReport:
    if not SYSTEM_STORE.is_dir():
        return _no_system_store()
    trusted = _system_link(ca).exists()
    return StoreReport(Outcome.TRUSTED if trusted else Outcome.ABSENT, _system_label(ca))


def _system_install(ca: DevCA) -> StoreReport:
    if not SYSTEM_STORE.is_dir():
        return _no_system_store()
    label = _system_label(ca)
    pem = ca.path.read_bytes()
    if _read(ca.system_file) == pem and _system_link(ca).exists():
        return StoreReport(Outcome.ALREADY, label, "nothing changed")
    tool = _system_tool(label, "--install")
    if isinstance(tool, StoreReport):
        return tool
    try:
        ca.system_file.write_bytes(pem)
        ca.system_file.chmod(0o644)
    except OSError as exc:
        return StoreReport(Outcome.FAILED, label, str(exc.strerror or exc))
    failure = _run(tool)
    return StoreReport(Outcome.FAILED, label, failure) if failure else StoreReport(Outcome.ADDED, label)


def _system_uninstall(ca: DevCA) -> StoreReport:
    if not SYSTEM_STORE.is_dir():
        return _no_system_store()
    label = _system_label(ca)
    if not ca.system_file.exists():
        return StoreReport(Outcome.ABSENT, label, "nothing to remove")
    tool = _system_tool(label, "--uninstall")
    if isinstance(tool, StoreReport):
        return tool
    try:
        ca.system_file.unlink()
    except OSError as exc:
        return StoreReport(Outcome.FAILED, label, str(exc.strerror or exc))
    # Without --fresh, the links to a removed local file stay behind, dangling.
    failure = _run(tool, "--fresh")
    return StoreReport(Outcome.FAILED, label, failure) if failure else StoreReport(Outcome.REMOVED, label)


def _system_tool(label: str, flag: str) -> str | StoreReport:
    """update-ca-certificates, or why the system store is skipped."""
    # Checked first: a user's PATH often lacks /usr/sbin, where the tool lives.
    if os.geteuid() != 0:
        return StoreReport(Outcome.SKIPPED, label, f"needs root; run 'sudo gateway certs {flag}' "
                           "with the same --certs-dir for it")
    tool = shutil.which("update-ca-certificates")
    if tool is None:
        return StoreReport(Outcome.SKIPPED, label, "update-ca-certificates not found on PATH "
                           "(apt-get install ca-certificates)")
    return tool


def _no_system_store() -> StoreReport:
    return StoreReport(Outcome.SKIPPED, "the system store",
                       f"{SYSTEM_STORE} not found: not a Debian-like system; add the CA to its "
                       "store by hand")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _run(*command: str) -> str:
    """Run a store's tool; '' when it succeeded, else its last words on why not."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TOOL_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{Path(command[0]).name}: {exc}"
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"{Path(command[0]).name} exited with status {done.returncode}"
