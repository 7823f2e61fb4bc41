"""HTTP/2 control-frame floods (issue 8, points 1 and 7) against a `gateway` process.

An attacker process floods PING, SETTINGS, PRIORITY, WINDOW_UPDATE or empty DATA frames as fast
as it can, reconnecting whenever it is cut off, while a well-behaved client on another address
makes requests one after another. The flooder gets GOAWAY ENHANCE_YOUR_CALM and its address is
refused for a while; the other client keeps at least half the rate it had alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GatewayProcess
from support import other_client

pytestmark = pytest.mark.timeout(120)

FLOOD_CLIENT = Path(__file__).resolve().parent / "flood_client.py"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APPS = Path(__file__).resolve().parents[1] / "apps"
KINDS = ["ping", "settings", "priority", "window_update", "empty_data"]
ENHANCE_YOUR_CALM = 0xB
MEASURE = 1.2


def request_rate(url: str, verify, seconds: float = MEASURE) -> float:
    """Requests per second one client makes one after another on one HTTP/2 connection."""
    with other_client(http1=False, http2=True, verify=verify, timeout=10) as client:
        assert client.get(url).status_code == 200
        count = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            assert client.get(url).status_code == 200
            count += 1
        return count / (time.monotonic() - started)


def flood(port: int, kind: int, source: str, seconds: float, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(FLOOD_CLIENT), str(port), kind, str(seconds), "--reconnect",
         "--source", source, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def report_of(attacker: subprocess.Popen) -> dict:
    out, err = attacker.communicate(timeout=30)
    assert attacker.returncode == 0 and out, f"flood client exited {attacker.returncode}: {err}"
    return json.loads(out)


def start_gateway(tmp_path: Path, certs, tls: bool, *flags: str) -> tuple[GatewayProcess, str, object]:
    args = ["--app-dir", str(EXAMPLES), "-b", "127.0.0.1:0", "--no-access-log", *flags]
    if tls:
        args += ["--certfile", certs.cert_file, "--keyfile", certs.key_file]
    process = GatewayProcess([*args, "hello:app"], tmp_path)
    port = process.wait_listening()
    if tls:
        return process, f"https://localhost:{port}/", certs.client_context()
    return process, f"http://127.0.0.1:{port}/", True


@pytest.mark.parametrize("tls", [False, True], ids=["h2c-not-reading", "tls-reading"])
def test_control_frame_floods_are_cut_off_and_other_clients_keep_their_rate(tmp_path, certs, tls):
    process, url, verify = start_gateway(tmp_path, certs, tls)
    port = process.port
    try:
        alone = request_rate(url, verify)
        for index, kind in enumerate(KINDS):
            extra = ["--tls", certs.ca_file, "--read"] if tls else []
            attacker = flood(port, kind, f"127.0.0.{10 + index}", 2.0, *extra)
            time.sleep(0.3)
            during = request_rate(url, verify)
            report = report_of(attacker)
            assert during >= 0.5 * alone, f"{kind}: {during:.0f} req/s under attack, {alone:.0f} alone"
            if tls:
                assert ENHANCE_YOUR_CALM in report["goaways"], f"{kind}: {report}"
    finally:
        code, output = process.stop()
    assert code == 0 and "Traceback" not in output
    for index, kind in enumerate(KINDS):
        assert f"refusing connections from 127.0.0.{10 + index} for 10s" in output, kind


def test_without_address_blocks_each_connection_is_cut_and_others_keep_their_rate(tmp_path, certs):
    """With per-address counting off, every new connection gets a fresh budget: the flooder is
    cut again and again, and batches bounded per turn of the loop keep the others served."""
    process, url, verify = start_gateway(tmp_path, certs, False, "--address-block-time", "0")
    try:
        alone = request_rate(url, verify)
        attacker = flood(process.port, "ping", "127.0.0.1", 2.0, "--read")
        time.sleep(0.3)
        during = request_rate(url, verify)
        report = report_of(attacker)
    finally:
        code, output = process.stop()
    assert during >= 0.5 * alone, f"{during:.0f} req/s under attack, {alone:.0f} alone"
    assert report["connections"] > 1 and report["goaways"].count(ENHANCE_YOUR_CALM) > 1, report
    assert "refusing connections" not in output
    assert code == 0 and "Traceback" not in output


def test_rapid_reset_across_connections_is_bounded_per_address(tmp_path, certs):
    """Each connection is cut after about 200 resets; reconnecting gave one client 13,351 app
    calls in 5 s before. Counted per address, the resets cut the first connection and the
    address is refused for --address-block-time."""
    process = GatewayProcess(["--app-dir", str(APPS), "-b", "127.0.0.1:0", "--no-access-log",
                              "paths:app"], tmp_path)
    port = process.wait_listening()
    url = f"http://127.0.0.1:{port}/"
    try:
        alone = request_rate(url, True)
        attacker = flood(port, "rapid_reset", "127.0.0.1", 2.5, "--read")
        time.sleep(0.3)
        during = request_rate(url, True)
        report = report_of(attacker)
        with other_client(timeout=5) as other:
            calls = int(other.get(f"{url}calls/127.0.0.1").text)
    finally:
        code, output = process.stop()
    assert ENHANCE_YOUR_CALM in report["goaways"], report
    assert calls < 600, f"{calls} app calls for a client that resets every stream"
    assert during >= 0.5 * alone, f"{during:.0f} req/s under attack, {alone:.0f} alone"
    assert output.count("refusing connections from 127.0.0.1 for 10s") == 1, output
    assert code == 0 and "Traceback" not in output
