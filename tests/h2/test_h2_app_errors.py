"""A failing app over HTTP/2: the same rules as HTTP/1.1, applied to one stream only."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from support import captured_log


async def failing_app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/before":
        raise RuntimeError("broken before the response")
    if scope["path"] == "/after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("broken in the middle of the body")
    if scope["path"] == "/silent":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"fine"})


def h2c_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=5)


def test_exception_before_the_response_is_a_500_and_one_traceback(serve):
    with captured_log() as log, serve(failing_app) as server, h2c_client() as client:
        response = client.get(server.url + "/before")
        assert response.http_version == "HTTP/2"
        assert response.status_code == 500
        assert client.get(server.url + "/").text == "fine"  # same connection goes on
    assert len(log.tracebacks()) == 1


def test_exception_mid_body_resets_only_that_stream(serve):
    with captured_log() as log, serve(failing_app) as server, h2c_client() as client:
        with pytest.raises(httpx.HTTPError):
            client.get(server.url + "/after")
        assert client.get(server.url + "/").text == "fine"
    assert len(log.tracebacks()) == 1


def test_app_returning_without_a_response_is_a_500(serve):
    with captured_log() as log, serve(failing_app) as server, h2c_client() as client:
        response = client.get(server.url + "/silent")
        assert response.status_code == 500
    assert any("without starting a response" in record.getMessage() for record in log.errors())
