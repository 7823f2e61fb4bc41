"""`gateway certs --install / --uninstall` as a user runs them: real certutil on NSS databases
in a fresh HOME, and, as root on Debian, the real system store checked with curl."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trustme
from conftest import run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("certutil") is None,
                       reason="certutil not installed (apt-get install libnss3-tools)"),
]

HELLO = """
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello over trusted TLS"})
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    directory = tmp_path / "home"
    directory.mkdir()
    return directory


@pytest.fixture
def only_certutil(tmp_path: Path) -> str:
    """A PATH with certutil and without update-ca-certificates: these tests leave the
    machine's system store alone, as on a system that has none."""
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "certutil").symlink_to(shutil.which("certutil"))
    return str(directory)


def certs(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home)}
    if path is not None:
        env["PATH"] = path
    return run_cli("certs", "--certs-dir", str(home / "devcerts"), *args, cwd=home, env=env)


def nickname(home: Path) -> str:
    ca = x509.load_pem_x509_certificate((home / "devcerts" / "ca.pem").read_bytes())
    return f"gateway development CA {ca.fingerprint(hashes.SHA256()).hex()[:16]}"


def nss_trust(database: Path, name: str) -> str | None:
    """The trust flags certutil lists for `name` in `database`, None when it is not there."""
    listing = subprocess.run(["certutil", "-L", "-d", f"sql:{database}"], capture_output=True,
                             text=True, check=True).stdout
    for line in listing.splitlines():
        if line.startswith(name + " "):
            return line[len(name):].strip()
    return None


def firefox_profile(home: Path, relative: str) -> Path:
    profile = home / relative
    profile.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True)
    return profile


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_install_creates_the_certificates_and_chromium_database_then_says_already(
        home: Path, only_certutil: str) -> None:
    chromium = home / ".pki" / "nssdb"

    first = certs(home, "--install", path=only_certutil)

    assert first.returncode == 0, first.stdout + first.stderr
    assert_clean(first)
    name = nickname(home)
    assert f"created development certificates in {home / 'devcerts'}" in first.stdout
    assert f"development CA: {home / 'devcerts' / 'ca.pem'} ({name})" in first.stdout
    assert f"added to Chromium's NSS database {chromium} (created)" in first.stdout
    system_store = f"the system store (/usr/local/share/ca-certificates/{name.replace(' ', '-')}.crt)"
    if not Path("/usr/local/share/ca-certificates").is_dir():
        assert "skipped the system store: /usr/local/share/ca-certificates not found" \
            in first.stdout
    elif os.geteuid() == 0:
        assert f"skipped {system_store}: update-ca-certificates not found on PATH" in first.stdout
    else:
        assert f"skipped {system_store}: needs root; run 'sudo gateway certs --install'" \
            in first.stdout
    assert "restart running browsers" in first.stdout
    assert nss_trust(chromium, name) == "C,,"

    second = certs(home, "--install", path=only_certutil)

    assert second.returncode == 0
    assert f"already trusted in Chromium's NSS database {chromium}: nothing changed" \
        in second.stdout
    assert "added" not in second.stdout
    assert "created" not in second.stdout
    assert "restart" not in second.stdout

    shown = certs(home, path=only_certutil)

    assert shown.returncode == 0
    assert f"  trusted in Chromium's NSS database {chromium}" in shown.stdout


def test_uninstall_removes_exactly_what_install_added(home: Path, only_certutil: str) -> None:
    chromium = home / ".pki" / "nssdb"
    assert certs(home, "--install", path=only_certutil).returncode == 0
    name = nickname(home)
    users_own = home / "users-own-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(users_own))
    subprocess.run(["certutil", "-A", "-d", f"sql:{chromium}", "-t", "C,,", "-n", "users own CA",
                    "-i", str(users_own)], check=True)

    removed = certs(home, "--uninstall", path=only_certutil)

    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert_clean(removed)
    assert f"removed from Chromium's NSS database {chromium}" in removed.stdout
    assert nss_trust(chromium, name) is None
    assert nss_trust(chromium, "users own CA") == "C,,"
    assert (home / "devcerts" / "ca.pem").exists()  # the CA itself is kept, only distrusted

    again = certs(home, "--uninstall", path=only_certutil)

    assert again.returncode == 0
    assert f"not in Chromium's NSS database {chromium}: nothing to remove" in again.stdout

    shown = certs(home, path=only_certutil)
    assert f"  not in Chromium's NSS database {chromium}" in shown.stdout


def test_firefox_profiles_with_a_database_are_changed_and_others_left_alone(
        home: Path, only_certutil: str) -> None:
    regular = firefox_profile(home, ".mozilla/firefox/abc123.default-release")
    snap = firefox_profile(home, "snap/firefox/common/.mozilla/firefox/xyz789.default")
    never_started = home / ".mozilla/firefox/unused.profile"
    never_started.mkdir()

    installed = certs(home, "--install", path=only_certutil)

    assert installed.returncode == 0, installed.stdout + installed.stderr
    name = nickname(home)
    for profile in (regular, snap):
        assert f"added to Firefox profile {profile}\n" in installed.stdout
        assert nss_trust(profile, name) == "C,,"
    assert str(never_started) not in installed.stdout
    assert list(never_started.iterdir()) == []

    removed = certs(home, "--uninstall", path=only_certutil)

    assert removed.returncode == 0
    for profile in (regular, snap):
        assert f"removed from Firefox profile {profile}\n" in removed.stdout
        assert nss_trust(profile, name) is None


def test_a_ca_trusted_by_hand_under_another_name_is_reported_not_doubled(
        home: Path, only_certutil: str) -> None:
    assert certs(home).returncode == 0
    chromium = home / ".pki" / "nssdb"
    chromium.mkdir(parents=True)
    database = f"sql:{chromium}"
    subprocess.run(["certutil", "-N", "-d", database, "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", database, "-t", "C,,", "-n", "gateway-dev-ca",
                    "-i", str(home / "devcerts" / "ca.pem")], check=True)

    result = certs(home, "--install", path=only_certutil)

    assert result.returncode == 1
    assert (f"failed for Chromium's NSS database {chromium}: it holds this CA under another name "
            f"(such as gateway-dev-ca, from gateway's older instructions); remove that with "
            f"'certutil -D -d {database} -n NAME' and run this again") in result.stdout
    assert nss_trust(chromium, "gateway-dev-ca") == "C,,"
    assert nss_trust(chromium, nickname(home)) is None


def test_without_certutil_says_what_to_install_and_changes_nothing(home: Path,
                                                                    tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()

    result = certs(home, "--install", path=str(empty))

    assert result.returncode == 1  # trusted nowhere
    assert_clean(result)
    assert ("skipped browsers' NSS databases (Chromium, Firefox): certutil not found; install it "
            "with 'apt-get install libnss3-tools'") in result.stdout
    assert "skipped the system store" in result.stdout
    assert not (home / ".pki").exists()


def test_uninstall_without_a_ca_is_one_line(home: Path) -> None:
    result = certs(home, "--uninstall")

    assert result.returncode == 2
    assert result.stderr == (f"gateway: error: no development CA at "
                             f"'{home / 'devcerts' / 'ca.pem'}': give --certs-dir where it is\n")
    assert not (home / "devcerts").exists()


def test_install_and_uninstall_together_is_a_usage_error(home: Path) -> None:
    result = certs(home, "--install", "--uninstall")

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "not allowed with argument" in result.stderr


def curl(port: int, host: str = "127.0.0.1") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "SSL_CERT_FILE")}
    return subprocess.run(["curl", "-sS", "--max-time", "10", f"https://{host}:{port}/"],
                          capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("update-ca-certificates") is None
                    or shutil.which("curl") is None,
                    reason="the system store needs root, update-ca-certificates and curl")
def test_system_store_makes_curl_trust_dev_tls_without_cacert(home: Path, gateway_cli) -> None:
    (home / "hello.py").write_text(HELLO)
    assert certs(home).returncode == 0  # the CA, to know its name before anything is installed
    system_file = Path("/usr/local/share/ca-certificates") / \
        f"{nickname(home).replace(' ', '-')}.crt"
    try:
        installed = certs(home, "--install")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert f"added to the system store ({system_file})" in installed.stdout
        assert system_file.read_bytes() == (home / "devcerts" / "ca.pem").read_bytes()
        again = certs(home, "--install")
        assert f"already trusted in the system store ({system_file}): nothing changed" \
            in again.stdout

        server = gateway_cli("--dev-tls", "--certs-dir", str(home / "devcerts"),
                             "-b", "127.0.0.1:0", "hello:app", cwd=home)
        port = server.wait_listening()
        for host in ("127.0.0.1", "localhost"):
            trusted = curl(port, host)
            assert trusted.returncode == 0, trusted.stderr
            assert trusted.stdout == "hello over trusted TLS"

        removed = certs(home, "--uninstall")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert f"removed from the system store ({system_file})" in removed.stdout
        assert not system_file.exists()

        refused = curl(port)
        assert refused.returncode == 60, refused.stderr  # peer certificate cannot be verified
    finally:
        if system_file.exists():
            certs(home, "--uninstall")


def chromium_page(home: Path, url: str) -> str:
    """What headless Chromium shows for `url`, its NSS database being the one in `home`."""
    done = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={home / 'chromium-profile'}", "--dump-dom", url],
        capture_output=True, text=True, env=dict(os.environ, HOME=str(home)), timeout=60,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_chromium_trusts_dev_tls_after_install_and_not_after_uninstall(
        home: Path, only_certutil: str, gateway_cli) -> None:
    (home / "hello.py").write_text(HELLO)
    server = gateway_cli("--dev-tls", "--certs-dir", str(home / "devcerts"), "-b", "127.0.0.1:0",
                         "hello:app", cwd=home)
    url = f"https://127.0.0.1:{server.wait_listening()}/"
    assert "hello over trusted TLS" not in chromium_page(home, url)

    assert certs(home, "--install", path=only_certutil).returncode == 0
    assert "hello over trusted TLS" in chromium_page(home, url)
    assert "hello over trusted TLS" in chromium_page(home, url.replace("127.0.0.1", "localhost"))

    assert certs(home, "--uninstall", path=only_certutil).returncode == 0
    assert "hello over trusted TLS" not in chromium_page(home, url)
