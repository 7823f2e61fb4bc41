"""`http.response.pathsend` and `http.response.zerocopysend` over HTTP/1.1, plain (the kernel
copies the file: os.sendfile) and over TLS (the file is read into body chunks), on both loops
and both engines: the bytes and the framing a client reads, HEAD, ranges, the errors an app can
make, a client that leaves halfway, a client that reads slowly or not at all, and the access
log's byte count. (HTTP/2: tests/h2/test_h2_pathsend.py.)"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time

import httpx
import pytest
from h1_client import RawClient, connect_tcp, request
from support import captured_log, ended_within, http_app, tls_settings, wait_until

MiB = 1024 * 1024
LOOPS = ("asyncio", "uvloop")


def pattern(size: int) -> bytes:
    """Bytes in which a misplaced or repeated block shows: no period of 256 or 64 KiB."""
    return (os.urandom(4096) * (size // 4096 + 1))[:size]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """An 8 MiB file and its bytes."""
    data = pattern(8 * MiB + 123)
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(data)
    return str(path), data


@pytest.fixture(params=LOOPS)
def loop(request: pytest.FixtureRequest) -> str:
    return request.param


def path_app(path: str, headers: list[tuple[bytes, bytes]] | None = None, status: int = 200,
             seen: dict | None = None):
    """Answers every request with the file at `path`, by `http.response.pathsend`."""

    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": headers or [
            (b"content-type", b"application/octet-stream")]})
        try:
            await send({"type": "http.response.pathsend", "path": path})
            if seen is not None:
                seen["returned"] = True
        finally:
            if seen is not None:
                seen["ended"] = True  # returned, or raised as a body send may once the client left

    return app


# -- the bytes and the framing --------------------------------------------------------------------


def test_the_scope_offers_both_extensions_plain_and_tls(serve, certs):
    extensions = []

    @http_app
    async def app(scope, receive, send):
        extensions.append(scope["extensions"])
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with serve(app) as server:
        httpx.get(server.url)
    with serve(app, **tls_settings(certs)) as server:
        httpx.get(server.url, verify=certs.client_context())
    for found in extensions:
        assert found["http.response.pathsend"] == {} and found["http.response.zerocopysend"] == {}


def test_a_big_file_arrives_whole_with_its_length(serve, big_file, http, loop):
    path, data = big_file
    with serve(path_app(path), http=http, loop=loop) as server, httpx.Client() as client:
        for _ in range(2):  # the connection goes on after the file
            response = client.get(server.url)
            assert response.status_code == 200
            assert response.headers["content-length"] == str(len(data))
            assert "transfer-encoding" not in response.headers
            assert response.content == data
        assert client.get(server.url).content == data


def test_a_big_file_over_tls_arrives_whole(serve, certs, big_file, http, loop):
    path, data = big_file
    with serve(path_app(path), http=http, loop=loop, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context()) as client:
        response = client.get(server.url)
        assert response.headers["content-length"] == str(len(data))
        assert response.content == data
        assert client.get(server.url).content == data


def test_a_file_over_a_unix_socket(serve, big_file, tmp_path):
    path, data = big_file
    sock = tmp_path / "gateway.sock"
    with serve(path_app(path), bind=[f"unix:{sock}"]), \
            httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as client:
        response = client.get("http://localhost/")
        assert response.content == data


def test_curl_downloads_the_file(serve, big_file, tmp_path):
    path, data = big_file
    out = tmp_path / "out.bin"
    with serve(path_app(path)) as server:
        result = subprocess.run(
            ["curl", "-sS", "-o", str(out), "-w", "%{http_code} %{size_download}", server.url],
            capture_output=True, text=True, timeout=30,
        )
    assert result.stdout == f"200 {len(data)}", result.stderr
    assert out.read_bytes() == data


@pytest.mark.parametrize("size", [0, 100, 64 * 1024, 64 * 1024 + 1])
def test_small_and_empty_files(serve, tmp_path, http, size):
    data = pattern(size)
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    with serve(path_app(str(path)), http=http) as server, RawClient(server.port) as client:
        for _ in range(2):
            client.send(request("GET", "/"))
            response = client.read_response()
            assert response.status == 200
            assert response.get(b"content-length") == str(size).encode()
            assert response.body == data


def test_the_apps_content_length_is_kept(serve, big_file, http):
    path, data = big_file
    headers = [(b"Content-Length", str(len(data)).encode())]
    with serve(path_app(path, headers), http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.get(b"content-length") == str(len(data)).encode()
        assert response.body == data


def test_the_apps_chunked_framing_is_kept(serve, big_file, http):
    path, data = big_file
    headers = [(b"transfer-encoding", b"chunked")]
    with serve(path_app(path, headers), http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.chunked and response.get(b"content-length") is None
        assert response.body == data


def test_a_content_length_the_file_does_not_fill_ends_the_connection(serve, big_file, http):
    path, data = big_file
    headers = [(b"content-length", str(len(data) + 10).encode())]
    with captured_log() as log, serve(path_app(path, headers), http=http) as server, \
            RawClient(server.port) as client:
        client.send(request("GET", "/"))
        raw = client.read_until_close()
        assert raw.endswith(data)  # the file, and then the connection ends short of the length
        assert wait_until(lambda: log.errors())
    assert not log.tracebacks()


def test_head_sends_the_length_and_no_body(serve, big_file, http, loop):
    path, data = big_file
    with serve(path_app(path), http=http, loop=loop) as server, RawClient(server.port) as client:
        client.send(request("HEAD", "/") + request("GET", "/"))
        head = client.read_response(head_request=True)
        assert head.status == 200
        assert head.get(b"content-length") == str(len(data)).encode()
        after = client.read_response()  # nothing of the file came between the two
        assert after.status == 200 and after.body == data


def test_a_204_by_pathsend_has_no_body_and_no_length(serve, big_file, http):
    path, _ = big_file
    with serve(path_app(path, status=204), http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/") + request("GET", "/"))
        for _ in range(2):
            response = client.read_response()
            assert response.status == 204 and response.get(b"content-length") is None


# -- the engines' framing of bytes they do not see (sans-IO, h11 the reference) -------------------


class _Defaults:
    head_lines = b"server: gateway\r\n"
    header_lines = b""
    date_line = b""
    head_fields = [(b"server", b"gateway")]
    header_fields: list[tuple[bytes, bytes]] = []
    date_value = b""


class _Handler:
    def on_request(self, *args) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_request_end(self) -> None: ...


def _framed_with_file_chunks(engine_class, version: bytes, headers, parts: list[bytes]) -> bytes:
    """A response whose body is `parts`, each framed by `file_chunk` and put between its
    framing bytes as the kernel copy would."""
    engine = engine_class(_Handler(), 4096, _Defaults())
    engine.feed(b"GET / HTTP/%b\r\nhost: x\r\n\r\n" % version)
    data, _ = engine.start_response(200, headers, b"", True, version == b"1.1")
    for part in parts:
        before, after = engine.file_chunk(len(part))
        data += before + part + after
    return data + engine.body(b"", False)


@pytest.mark.parametrize(("version", "headers"), [
    (b"1.1", [(b"content-length", b"12")]), (b"1.1", []), (b"1.0", []),
], ids=["length", "chunked", "http10-close"])
def test_both_engines_frame_file_chunks_alike(version, headers):
    from gateway.h1.h11_engine import H11Engine
    from gateway.h1.httptools_engine import HttptoolsEngine

    parts = [b"hello", b"", b"world!!"]
    h11_bytes = _framed_with_file_chunks(H11Engine, version, headers, parts)
    fast_bytes = _framed_with_file_chunks(HttptoolsEngine, version, headers, parts)
    assert fast_bytes.lower() == h11_bytes.lower()
    assert h11_bytes.endswith(b"\r\n\r\n5\r\nhello\r\n7\r\nworld!!\r\n0\r\n\r\n"
                              if version == b"1.1" and not headers else b"\r\n\r\nhelloworld!!")


def test_both_engines_refuse_file_chunks_past_the_length():
    from gateway.h1.engine import BodyLengthError
    from gateway.h1.h11_engine import H11Engine
    from gateway.h1.httptools_engine import HttptoolsEngine

    for engine_class in (H11Engine, HttptoolsEngine):
        with pytest.raises(BodyLengthError):
            _framed_with_file_chunks(engine_class, b"1.1", [(b"content-length", b"4")], [b"hello"])


# -- zerocopysend ---------------------------------------------------------------------------------


def test_zerocopysend_a_range_of_a_file(serve, big_file, http, loop):
    path, data = big_file
    offset, count = 1000, 3 * MiB + 7

    @http_app
    async def app(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": "http.response.start", "status": 206, "headers": [
                (b"content-range", b"bytes %d-%d/%d" % (offset, offset + count - 1, len(data)))]})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": offset,
                        "count": count})

    with serve(app, http=http, loop=loop) as server, httpx.Client() as client:
        response = client.get(server.url)
        assert response.status_code == 206
        assert response.headers["content-length"] == str(count)
        assert response.content == data[offset:offset + count]


def test_zerocopysend_from_a_descriptor_and_the_files_position(serve, big_file, http):
    """Without an offset the file is read from its position, which moves past what was sent,
    so that two messages send two consecutive parts; without a count, to the end."""
    path, data = big_file
    positions = []

    @http_app
    async def app(scope, receive, send):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.lseek(fd, 10, os.SEEK_SET)
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.zerocopysend", "file": fd, "count": 2 * MiB,
                        "more_body": True})
            positions.append(os.lseek(fd, 0, os.SEEK_CUR))
            await send({"type": "http.response.zerocopysend", "file": fd, "more_body": False})
            positions.append(os.lseek(fd, 0, os.SEEK_CUR))
        finally:
            os.close(fd)

    with serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.chunked  # the first part did not say how much more was to come
        assert response.body == data[10:]
    assert positions == [10 + 2 * MiB, len(data)]


def test_zerocopysend_mixed_with_body_chunks(serve, big_file, http, loop):
    path, data = big_file

    @http_app
    async def app(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"<", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 0,
                        "count": 100, "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 100,
                        "count": 4 * MiB, "more_body": True})
            await send({"type": "http.response.body", "body": b">", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 0,
                        "count": 1 * MiB})

    expected = b"<" + data[:4 * MiB + 100] + b">" + data[:MiB]
    with serve(app, http=http, loop=loop) as server, RawClient(server.port) as client:
        for _ in range(2):
            client.send(request("GET", "/"))
            response = client.read_response()
            assert response.chunked and response.body == expected


def test_zerocopysend_over_tls(serve, certs, big_file):
    path, data = big_file

    @http_app
    async def app(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 5,
                        "count": 5 * MiB})

    with serve(app, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context()) as client:
        response = client.get(server.url)
        assert response.headers["content-length"] == str(5 * MiB)
        assert response.content == data[5:5 * MiB + 5]


# -- an app's mistakes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "bad"), [
    ("missing", "/no/such/file"), ("relative", "relative/path"), ("directory", "/"),
    ("not a str", b"/etc/hostname"),
])
def test_a_file_that_cannot_be_sent_is_a_500_and_one_line(serve, http, name, bad):
    with captured_log() as log, serve(path_app(bad), http=http) as server, \
            RawClient(server.port) as client:
        client.send(request("GET", "/"))
        response = client.read_response()
        assert response.status == 500
        errors = log.wait_for(logging.ERROR)
    assert len(errors) == 1 and repr(bad) in errors[0], errors
    assert not log.tracebacks()


def test_a_fifo_is_refused_without_waiting_for_a_writer(serve, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with captured_log() as log, serve(path_app(str(fifo))) as server:
        assert httpx.get(server.url, timeout=5).status_code == 500
        assert "not a regular file" in log.wait_for(logging.ERROR)[0]


def test_a_range_past_the_end_of_the_file_is_a_500(serve, big_file, http):
    path, data = big_file

    @http_app
    async def app(scope, receive, send):
        with open(path, "rb") as file:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": len(data) - 10,
                        "count": 11})

    with captured_log() as log, serve(app, http=http) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        assert client.read_response().status == 500
        assert log.wait_for(logging.ERROR)
    assert not log.tracebacks()


def test_pathsend_after_a_body_chunk_is_refused(serve, big_file):
    path, _ = big_file

    @http_app
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.pathsend", "path": path})

    with captured_log() as log, serve(app) as server, RawClient(server.port) as client:
        client.send(request("GET", "/"))
        client.read_until_close()
        assert wait_until(lambda: any("pathsend" in str(record.exc_info[1])
                                      for record in log.tracebacks()))


# -- clients that leave, read slowly, or not at all -----------------------------------------------


@pytest.fixture(scope="module")
def huge_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A 64 MiB file (sparse: its bytes do not matter here), bigger than what the socket
    buffers on both sides hold."""
    path = tmp_path_factory.mktemp("files") / "huge.bin"
    with open(path, "wb") as file:
        file.truncate(64 * MiB)
    return str(path), 64 * MiB


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_client_that_leaves_halfway_ends_the_send_quietly(serve, certs, huge_file, http, loop, tls):
    path, size = huge_file
    seen: dict = {}
    settings = tls_settings(certs) if tls else {}
    with captured_log() as log, serve(path_app(path, seen=seen), http=http, loop=loop,
                                      **settings) as server:
        sock = connect_tcp(server.port)
        if tls:
            sock = certs.client_context().wrap_socket(sock, server_hostname="localhost")
        sock.sendall(request("GET", "/"))
        got = 0
        while got < 4 * MiB:
            got += len(sock.recv(MiB))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, with most of the file unsent
        assert wait_until(lambda: seen.get("ended"))
        assert wait_until(lambda: server.connection_count == 0)
        # The server goes on serving.
        response = httpx.get(server.url, timeout=10, verify=certs.client_context())
        assert len(response.content) == size
    assert not log.tracebacks() and not log.errors(), log.describe()


def test_a_slow_reader_makes_the_send_wait(serve, huge_file, http, loop):
    path, size = huge_file
    seen: dict = {}
    with serve(path_app(path, seen=seen), http=http, loop=loop) as server:
        sock = connect_tcp(server.port, rcvbuf=128 * 1024)
        sock.sendall(request("GET", "/"))
        time.sleep(0.5)
        assert not seen  # the kernel holds what the client has not read; the send waits
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        got = len(data.partition(b"\r\n\r\n")[2])
        while got < size:
            chunk = sock.recv(MiB)
            assert chunk
            got += len(chunk)
            time.sleep(0.0005)  # a slow reader, still reading
        assert got == size
        assert wait_until(lambda: seen.get("returned"))
        sock.close()


def test_a_client_that_reads_nothing_is_dropped_after_the_send_timeout(serve, huge_file, http, loop):
    path, _ = huge_file
    seen: dict = {}
    with captured_log() as log, serve(path_app(path, seen=seen), http=http, loop=loop,
                                      send_timeout=1) as server:
        sock = connect_tcp(server.port, rcvbuf=128 * 1024)
        sock.sendall(request("GET", "/"))
        time.sleep(0.3)
        started = time.monotonic()
        assert wait_until(lambda: server.connection_count == 0, timeout=5)
        assert time.monotonic() - started < 4
        assert wait_until(lambda: seen.get("ended"))
        assert ended_within(sock, 2)
        sock.close()
    assert not log.tracebacks()


def test_a_copy_past_the_response_timeout_is_cut_off(serve, huge_file, http, loop):
    path, _ = huge_file
    seen: dict = {}
    with captured_log() as log, serve(path_app(path, seen=seen), http=http, loop=loop,
                                      response_timeout=1, send_timeout=0) as server:
        sock = connect_tcp(server.port, rcvbuf=128 * 1024)
        sock.sendall(request("GET", "/"))
        assert wait_until(lambda: seen.get("ended"), timeout=5)
        assert not seen.get("returned")  # cancelled in its send
        assert ended_within(sock, 3)
        sock.close()
        assert wait_until(lambda: server.connection_count == 0)
    assert not log.tracebacks()


def test_no_descriptor_is_left_open(serve, huge_file, loop):
    """The files opened for pathsend and the socket duplicates a copy waits on are closed,
    whether the copy ends or the client leaves."""
    path, _ = huge_file
    with serve(path_app(path), loop=loop) as server:
        httpx.get(server.url, timeout=10)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(5):
            httpx.get(server.url, timeout=10)
            sock = connect_tcp(server.port, rcvbuf=128 * 1024)
            sock.sendall(request("GET", "/"))
            sock.recv(65536)
            sock.close()
        assert wait_until(lambda: server.connection_count == 0)
        assert wait_until(lambda: len(os.listdir("/proc/self/fd")) <= before)


def test_other_clients_are_served_during_a_long_copy(serve, huge_file):
    """The copy yields the loop between its turns."""
    path, size = huge_file
    with serve(path_app(path)) as server:
        done = threading.Event()

        def download() -> None:
            with httpx.stream("GET", server.url, timeout=30) as response:
                for _ in response.iter_raw():
                    time.sleep(0.001)
            done.set()

        thread = threading.Thread(target=download)
        thread.start()
        try:
            with RawClient(server.port) as client:
                for _ in range(5):
                    started = time.monotonic()
                    client.send(request("HEAD", "/"))
                    assert client.read_response(head_request=True).status == 200
                    assert time.monotonic() - started < 1
        finally:
            thread.join(30)
        assert done.is_set()


# -- counts ---------------------------------------------------------------------------------------


def test_the_sent_bytes_metric_counts_the_file(serve, big_file):
    from prometheus_client.parser import text_string_to_metric_families

    path, data = big_file

    def sent(port: int) -> float:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return next(sample.value for family in text_string_to_metric_families(text)
                    for sample in family.samples if sample.name == "gateway_sent_bytes_total")

    with serve(path_app(path), metrics_bind="127.0.0.1:0") as server:
        port = server.server.metrics.sock.getsockname()[1]
        with httpx.Client() as client:
            for _ in range(3):
                assert len(client.get(server.url).content) == len(data)
        assert wait_until(lambda: sent(port) >= 3 * len(data))
        assert sent(port) < 3 * (len(data) + 1000)  # the files and their heads, once each


def test_the_access_log_counts_the_file_bytes(serve, big_file, certs):
    path, data = big_file
    for settings in ({}, tls_settings(certs)):
        with captured_log("gateway.access", logging.INFO) as log, \
                serve(path_app(path), access_log=True, **settings) as server, \
                httpx.Client(verify=certs.client_context()) as client:
            client.get(server.url)
            client.head(server.url)
            assert wait_until(lambda: len(log.records) == 2)
        sizes = [record.msg.size for record in log.records]
        assert sizes == [len(data), 0], settings
