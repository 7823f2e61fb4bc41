"""A 1 GiB download and a 1 GiB upload over h2 with TLS, through httpx, against a `gateway`
process: the bytes arrive intact, and the server's memory stays bounded by the flow-control
windows and the app's chunk size, not by the size of the transfer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from apps.transfer import CHUNK, pattern
from support import process_memory

pytestmark = pytest.mark.timeout(180)

SIZE = 1024 * 1024 * 1024
APPS = Path(__file__).resolve().parent.parent / "apps"
# What the server may hold at its peak beyond its resident size at start: httpx opens a 16 MiB
# connection window, and TLS and the allocator keep buffers of their own. A server that kept
# the transfer would need the whole GiB.
MEMORY_ALLOWANCE = 128 * 1024 * 1024


@pytest.fixture
def transfer_server(gateway_cli, certs):
    process = gateway_cli("--app-dir", str(APPS), "-b", "127.0.0.1:0", "--certfile", certs.cert_file,
                          "--keyfile", certs.key_file, "--no-access-log", "transfer:app")
    port = process.wait_listening()
    pid = process.process.pid
    with httpx.Client(verify=certs.client_context(), http2=True, timeout=30) as client:
        assert client.get(f"https://localhost:{port}/download?size=1").http_version == "HTTP/2"
        yield client, f"https://localhost:{port}", pid, process_memory(pid, "VmRSS")
    code, output = process.stop()
    assert "Traceback" not in output


def test_1gib_download_over_h2_in_bounded_memory(transfer_server):
    client, url, pid, start = transfer_server
    digest = hashlib.sha256()
    total = 0
    with client.stream("GET", f"{url}/download?size={SIZE}") as response:
        assert response.http_version == "HTTP/2"
        for chunk in response.iter_raw():
            digest.update(chunk)
            total += len(chunk)
    assert total == SIZE
    block = pattern(CHUNK)
    expected = hashlib.sha256()
    for _ in range(SIZE // CHUNK):
        expected.update(block)
    assert digest.hexdigest() == expected.hexdigest()
    assert process_memory(pid, "VmHWM") - start < MEMORY_ALLOWANCE


def test_1gib_upload_over_h2_in_bounded_memory(transfer_server):
    client, url, pid, start = transfer_server
    block = pattern(CHUNK)
    expected = hashlib.sha256()
    for _ in range(SIZE // CHUNK):
        expected.update(block)
    response = client.post(f"{url}/upload", content=(block for _ in range(SIZE // CHUNK)),
                           headers={"content-length": str(SIZE)})
    assert response.http_version == "HTTP/2"
    assert response.text == f"{SIZE} {expected.hexdigest()}"
    assert process_memory(pid, "VmHWM") - start < MEMORY_ALLOWANCE
