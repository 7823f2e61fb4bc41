"""The `gateway` command as a user types it: help, version, mistakes, certificates, dev TLS."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import textwrap
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import websockets
import websockets.sync.client
from conftest import run_cli
from cryptography.hazmat.primitives import serialization
from support import assert_port_free, free_port

import gateway

pytestmark = pytest.mark.timeout(60)

HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = ("hello " + scope["path"]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})

NOT_AN_APP = 42

def make_app():
    return app

def broken_factory():
    raise RuntimeError("factory cannot find its settings")
"""

BROKEN_SYNTAX = """
async def app(scope, receive, send)
    pass
"""

MISSING_DEPENDENCY = """
import nosuchdependency_xyz

app = None
"""

EXPLODES = """
raise RuntimeError("settings file not found")
"""

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def project(tmp_path_factory, certs) -> Path:
    """A directory with app modules and certificate files, good and bad."""
    directory = tmp_path_factory.mktemp("project")
    (directory / "hello.py").write_text(textwrap.dedent(HELLO))
    (directory / "broken.py").write_text(textwrap.dedent(BROKEN_SYNTAX))
    (directory / "needsdep.py").write_text(textwrap.dedent(MISSING_DEPENDENCY))
    (directory / "explodes.py").write_text(textwrap.dedent(EXPLODES))
    (directory / "garbage.pem").write_text("this is not a certificate\n")
    (directory / "afile").write_text("a file where a directory should be\n")
    other = certs.ca.issue_cert("localhost")
    other.private_key_pem.write_to_path(str(directory / "other-key.pem"))
    key = serialization.load_pem_private_key(Path(certs.key_file).read_bytes(), password=None)
    (directory / "encrypted-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD.encode()),
    ))
    return directory


def expand(args: list[str], project: Path, certs) -> list[str]:
    values = {
        "{cert}": certs.cert_file,
        "{key}": certs.key_file,
        "{ca}": certs.ca_file,
        "{other_key}": str(project / "other-key.pem"),
        "{encrypted_key}": str(project / "encrypted-key.pem"),
    }
    return [values.get(arg, arg) for arg in args]


def assert_one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    line = lines[0]
    assert line.startswith("gateway: error:"), line
    assert "_ssl.c" not in line, line  # OpenSSL's internals are not a message for a user
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


TLS = ["--certfile", "{cert}", "--keyfile", "{key}"]

USER_ERRORS = {
    "bad-flag": (["--bogus", "hello:app"], ["--bogus"]),
    "unknown-lifespan-choice": (["--lifespan", "maybe", "hello:app"], ["maybe"]),
    "unknown-verify-mode": ([*TLS, "--verify-mode", "sometimes", "hello:app"], ["sometimes"]),
    "unknown-loop": (["--loop", "trio", "hello:app"], ["trio"]),
    "not-a-number": (["--graceful-timeout", "soon", "hello:app"], ["soon"]),
    "negative-timeout": (["--graceful-timeout", "-1", "hello:app"], ["--graceful-timeout"]),
    "no-app": ([], ["MODULE:ATTR"]),
    "app-without-colon": (["hello"], ["hello"]),
    "no-such-module": (["nosuchmodule:app"], ["nosuchmodule"]),
    "missing-attribute": (["hello:nope"], ["hello", "nope"]),
    "not-callable": (["hello:NOT_AN_APP"], ["int"]),
    "factory-without-flag": (["hello:make_app"], ["--factory"]),
    "missing-certfile": (["--certfile", "missing.pem", "--keyfile", "{key}", "hello:app"],
                         ["missing.pem"]),
    "missing-keyfile": (["--certfile", "{cert}", "--keyfile", "missing-key.pem", "hello:app"],
                        ["missing-key.pem"]),
    "keyfile-without-certfile": (["--keyfile", "{key}", "hello:app"], ["--certfile"]),
    "certfile-not-pem": (["--certfile", "garbage.pem", "hello:app"], ["garbage.pem"]),
    "keyfile-not-pem": (["--certfile", "{cert}", "--keyfile", "garbage.pem", "hello:app"],
                        ["garbage.pem"]),
    "key-does-not-match": (["--certfile", "{cert}", "--keyfile", "{other_key}", "hello:app"],
                           ["match"]),
    "wrong-password": (["--certfile", "{cert}", "--keyfile", "{encrypted_key}",
                        "--keyfile-password", "wrong", "hello:app"], ["password"]),
    "encrypted-key-without-password": (
        ["--certfile", "{cert}", "--keyfile", "{encrypted_key}", "hello:app"], ["password"]),
    "verify-without-ca-certs": ([*TLS, "--verify-mode", "required", "hello:app"], ["--ca-certs"]),
    "missing-ca-certs": ([*TLS, "--verify-mode", "required", "--ca-certs", "missing-ca.pem",
                          "hello:app"], ["missing-ca.pem"]),
    "ca-certs-not-pem": ([*TLS, "--verify-mode", "required", "--ca-certs", "garbage.pem",
                          "hello:app"], ["garbage.pem"]),
    "certfile-is-a-directory": (["--certfile", ".", "--keyfile", "{key}", "hello:app"],
                                ["--certfile"]),
    "verify-without-tls": (["--verify-mode", "required", "--ca-certs", "{ca}", "hello:app"],
                           ["TLS"]),
    "bad-ciphers": ([*TLS, "--ciphers", "NOT-A-CIPHER", "hello:app"], ["NOT-A-CIPHER"]),
    "dev-tls-and-certfile": (["--dev-tls", *TLS, "hello:app"], ["--dev-tls"]),
    "dev-tls-unwritable-dir": (["--dev-tls", "--certs-dir", "afile/sub", "hello:app"], ["afile"]),
    "bad-root-path": (["--root-path", "api/", "hello:app"], ["api/"]),
    "bind-without-port": (["-b", "localhost", "hello:app"], ["localhost"]),
    "bind-port-too-large": (["-b", "127.0.0.1:70000", "hello:app"], ["70000"]),
    "bind-ipv6-without-brackets": (["-b", "::1:8000", "hello:app"], ["::1:8000"]),
    "bind-fd-not-ascii-digits": (["-b", "fd://\u00b2", "hello:app"], ["fd://"]),
    "h2-frame-size-too-small": (["--h2-max-frame-size", "100", "hello:app"],
                                ["--h2-max-frame-size"]),
    "h2-window-too-large": (["--h2-initial-window-size", str(2**31), "hello:app"],
                            ["--h2-initial-window-size"]),
    "h2-streams-zero": (["--h2-max-concurrent-streams", "0", "hello:app"],
                        ["--h2-max-concurrent-streams"]),
    "negative-send-timeout": (["--send-timeout", "-5", "hello:app"], ["--send-timeout"]),
    "limit-connections-zero": (["--limit-connections", "0", "hello:app"], ["--limit-connections"]),
    "unknown-http-engine": (["--http", "h3", "hello:app"], ["h3"]),
    "ws-max-size-zero": (["--ws-max-size", "0", "hello:app"], ["--ws-max-size"]),
    "negative-ws-ping-interval": (["--ws-ping-interval", "-1", "hello:app"], ["--ws-ping-interval"]),
    "negative-ws-close-timeout": (["--ws-close-timeout", "-1", "hello:app"], ["--ws-close-timeout"]),
    "ws-deflate-not-a-boolean": (["--ws-per-message-deflate", "maybe", "hello:app"], ["maybe"]),
}


# The app's own code raised: the user sees their traceback (their file and line), then one
# line; exit status 3, start-up failed, as when lifespan start-up fails.
APP_ERRORS = {
    "syntax-error": (["broken:app"], ["broken", "SyntaxError"], 'broken.py", line 2'),
    "missing-dependency": (["needsdep:app"], ["needsdep", "nosuchdependency_xyz"],
                           'needsdep.py", line 2, in <module>'),
    "module-raises": (["explodes:app"], ["explodes", "settings file not found"],
                      'explodes.py", line 2, in <module>'),
    "factory-raises": (["--factory", "hello:broken_factory"], ["factory cannot find its settings"],
                       'hello.py", line 16, in broken_factory'),
}


@pytest.mark.parametrize("case", list(APP_ERRORS))
def test_an_app_that_raises_while_loading_shows_its_traceback_exit_3(project, case):
    args, words, where = APP_ERRORS[case]
    port = free_port()
    result = run_cli("-b", f"127.0.0.1:{port}", *args, cwd=project)
    assert result.returncode == 3, result.stderr
    assert where in result.stderr, result.stderr
    assert "gateway/" not in result.stderr and "importlib" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("gateway: error:") and all(word in lines[-1] for word in words)
    assert sum(line.startswith("gateway: error:") for line in lines) == 1
    assert_port_free(port)


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_error_is_one_line_exit_2_nothing_bound(project, certs, case):
    args, words = USER_ERRORS[case]
    args = expand(args, project, certs)
    port = free_port()
    if "-b" not in args:
        args = ["-b", f"127.0.0.1:{port}", *args]
    result = run_cli(*args, cwd=project)
    assert_one_error_line(result, *words)
    assert_port_free(port)


def test_port_in_use_is_one_error_line_and_other_listeners_are_released(project):
    first = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_cli("-b", f"127.0.0.1:{first}", "-b", f"127.0.0.1:{busy}", "hello:app",
                         cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("gateway: error:")]
    assert len(errors) == 1, output
    assert str(busy) in errors[0]
    assert "in use" in errors[0].lower()
    assert_port_free(first)


def test_address_not_on_this_machine_is_one_error_line(project):
    result = run_cli("-b", "192.0.2.1:8000", "hello:app", cwd=project)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("gateway: error:")]
    assert len(errors) == 1 and "192.0.2.1:8000" in errors[0], output


def test_help_is_readable(project):
    result = run_cli("--help", cwd=project)
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("usage: gateway")
    for flag in ("MODULE:ATTR", "--certfile", "--keyfile", "--keyfile-password", "--bind",
                 "--dev-tls", "--factory", "--app-dir", "--root-path", "--lifespan",
                 "--verify-mode", "--ca-certs", "--ciphers", "--graceful-timeout",
                 "--keep-alive-timeout", "--loop", "--log-level", "--no-access-log",
                 "--no-server-header", "--version"):
        assert flag in text, flag
    assert "Traceback" not in text + result.stderr
    assert max(len(line) for line in text.splitlines()) <= 100


def test_certs_help(project):
    result = run_cli("certs", "--help", cwd=project)
    assert result.returncode == 0
    for flag in ("--certs-dir", "--install", "--uninstall"):
        assert flag in result.stdout


def test_version(project):
    result = run_cli("--version", cwd=project)
    assert result.returncode == 0
    assert result.stdout.strip() == f"gateway {gateway.__version__}"


@pytest.mark.skipif(shutil.which("gateway") is None, reason="console script not on PATH")
def test_console_script(project):
    result = subprocess.run(["gateway", "--version"], capture_output=True, text=True, timeout=30,
                            cwd=project)
    assert result.returncode == 0
    assert result.stdout.strip() == f"gateway {gateway.__version__}"


def test_right_keyfile_password_serves_https(project, certs, gateway_cli):
    process = gateway_cli("--certfile", certs.cert_file, "--keyfile",
                          str(project / "encrypted-key.pem"), "--keyfile-password", PASSWORD,
                          "-b", "127.0.0.1:0", "hello:app", cwd=project)
    port = process.wait_listening()
    response = httpx.get(f"https://localhost:{port}/pw", verify=certs.client_context(), timeout=5)
    assert response.status_code == 200
    assert response.text == "hello /pw"
    returncode, output = process.stop()
    assert returncode == 0, output


@pytest.mark.parametrize(
    "flags",
    [
        ["--factory", "hello:make_app"],
        ["--loop", "asyncio", "hello:app"],
        ["--loop", "uvloop", "hello:app"],
        ["--http", "h11", "hello:app"],
        ["--http", "httptools", "hello:app"],
    ],
    ids=lambda flags: " ".join(flags),
)
def test_serves_with(project, gateway_cli, flags):
    process = gateway_cli("-b", "127.0.0.1:0", *flags, cwd=project)
    port = process.wait_listening()
    response = httpx.get(f"http://127.0.0.1:{port}/x", timeout=5)
    assert response.text == "hello /x"
    returncode, output = process.stop()
    assert returncode == 0, output
    assert "Traceback" not in output


def test_app_dir(project, tmp_path, gateway_cli):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = gateway_cli("--app-dir", str(project), "-b", "127.0.0.1:0", "hello:app",
                          cwd=elsewhere)
    port = process.wait_listening()
    assert httpx.get(f"http://127.0.0.1:{port}/dir", timeout=5).text == "hello /dir"
    assert process.stop()[0] == 0


def test_certs_command_creates_and_reuses(tmp_path):
    directory = tmp_path / "devcerts"
    result = run_cli("certs", "--certs-dir", str(directory), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    names = {p.name for p in directory.iterdir()}
    assert {"ca.pem", "ca-key.pem", "localhost.pem", "localhost-key.pem"} <= names
    ca = str((directory / "ca.pem").absolute())
    assert ca in result.stdout
    assert "curl --cacert" in result.stdout
    assert "SSL_CERT_FILE" in result.stdout
    for key in ("ca-key.pem", "localhost-key.pem"):
        assert stat.S_IMODE(os.stat(directory / key).st_mode) == 0o600
    before = (directory / "ca.pem").read_bytes()

    again = run_cli("certs", "--certs-dir", str(directory), cwd=tmp_path)
    assert again.returncode == 0
    assert "reusing" in again.stdout
    assert (directory / "ca.pem").read_bytes() == before


def test_dev_tls_serves_https_trusted_by_the_dev_ca(tmp_path, project, gateway_cli):
    directory = tmp_path / "devcerts"
    process = gateway_cli("--dev-tls", "--certs-dir", str(directory), "-b", "127.0.0.1:0",
                          "hello:app", cwd=project)
    port = process.wait_listening()
    ca = directory / "ca.pem"
    context = ssl.create_default_context(cafile=str(ca))
    response = httpx.get(f"https://localhost:{port}/dev", verify=context, timeout=5)
    assert response.status_code == 200
    assert response.text == "hello /dev"
    assert response.http_version == "HTTP/1.1"
    # and a client that does not trust the dev CA refuses it
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://localhost:{port}/dev", verify=ssl.create_default_context(), timeout=5)
    returncode, output = process.stop()
    assert returncode == 0, output
    assert str(ca.absolute()) in output  # where the CA is, to trust it
    assert "Traceback" not in output


def test_h2_flags_reach_the_wire(project, gateway_cli):
    process = gateway_cli("-b", "127.0.0.1:0", "--h2-max-concurrent-streams", "7",
                          "--h2-initial-window-size", "70000", "hello:app", cwd=project)
    port = process.wait_listening()
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(client.data_to_send())
        events = client.receive_data(sock.recv(65536))
    (changed,) = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)]
    settings = {code: item.new_value for code, item in changed.changed_settings.items()}
    assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 70000
    assert process.stop()[0] == 0


def test_ws_flags_reach_the_wire(gateway_cli):
    """--ws-per-message-deflate false: no extension for a client that offers it;
    --ws-max-size: a larger message is closed with 1009."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    process = gateway_cli("--app-dir", str(examples), "-b", "127.0.0.1:0",
                          "--ws-per-message-deflate", "false", "--ws-max-size", "100",
                          "websocket_echo:app")
    port = process.wait_listening()
    with websockets.sync.client.connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
        assert ws.response.headers.get("sec-websocket-extensions") is None
        ws.send("x" * 100)
        assert ws.recv(timeout=5) == "x" * 100
        ws.send("x" * 101)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert process.stop()[0] == 0


def test_a_password_for_a_key_that_needs_none_is_a_warning(project, certs, gateway_cli):
    process = gateway_cli("--certfile", certs.cert_file, "--keyfile", certs.key_file,
                          "--keyfile-password", "unneeded", "-b", "127.0.0.1:0", "hello:app",
                          cwd=project)
    port = process.wait_listening()
    assert any("WARNING --keyfile-password was given but the key" in line and "not encrypted" in line
               for line in process.lines), process.lines
    response = httpx.get(f"https://localhost:{port}/", verify=certs.client_context(), timeout=5)
    assert response.status_code == 200
    returncode, _ = process.stop()
    assert returncode == 0
