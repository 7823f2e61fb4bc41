"""Real Starlette and FastAPI apps over HTTP/2 (TLS, ALPN h2) with httpx, and curl."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from support import tls_settings

pytestmark = pytest.mark.timeout(30)


async def item(request: Request) -> JSONResponse:
    return JSONResponse({
        "id": int(request.path_params["item_id"]),
        "q": request.query_params.get("q"),
        "http_version": request.scope["http_version"],
        "scheme": request.url.scheme,
        "host": request.headers["host"],
    })


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                         "type": request.headers.get("content-type")})


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "5"))

    async def lines():
        for number in range(count):
            yield f"line {number}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


STARLETTE = Starlette(routes=[
    Route("/items/{item_id:int}", item, name="item"),
    Route("/echo", echo, methods=["POST"]),
    Route("/stream", stream),
])


def test_starlette_json_route_over_h2(serve, certs):
    with serve(STARLETTE, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=10) as client:
        response = client.get(f"https://localhost:{server.port}/items/42", params={"q": "é x"})
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": 42, "q": "é x", "http_version": "2", "scheme": "https",
                               "host": f"localhost:{server.port}"}


def test_starlette_post_body_echo_over_h2(serve, certs):
    payload = bytes(range(256)) * 4096  # 1 MiB, several windows' worth
    with serve(STARLETTE, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=10) as client:
        response = client.post(f"https://localhost:{server.port}/echo", content=payload,
                               headers={"content-type": "application/octet-stream"})
        small = client.post(f"https://localhost:{server.port}/echo", json={"a": 1})
    assert response.http_version == "HTTP/2"
    assert response.json() == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                               "type": "application/octet-stream"}
    assert small.json()["type"] == "application/json"
    assert small.json()["length"] == len(b'{"a":1}')


def test_starlette_streaming_response_over_h2(serve, certs):
    with serve(STARLETTE, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=10) as client, \
            client.stream("GET", f"https://localhost:{server.port}/stream", params={"n": 1000}) as response:
        assert response.http_version == "HTTP/2"
        text = b"".join(response.iter_bytes()).decode()
    assert text == "".join(f"line {n}\n" for n in range(1000))
    assert response.headers["content-type"].startswith("text/plain")


def test_starlette_concurrent_requests_on_one_h2_connection(serve, certs):
    async def main(port: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(verify=certs.client_context(), http2=True, timeout=10) as client:
            return await asyncio.gather(*(
                client.get(f"https://localhost:{port}/items/{n}") for n in range(30)
            ))

    with serve(STARLETTE, **tls_settings(certs)) as server:
        responses = asyncio.run(main(server.port))
    assert [r.json()["id"] for r in responses] == list(range(30))
    assert {r.http_version for r in responses} == {"HTTP/2"}


def test_starlette_404_and_405_over_h2(serve, certs):
    with serve(STARLETTE, **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=10) as client:
        missing = client.get(f"https://localhost:{server.port}/nope")
        wrong = client.get(f"https://localhost:{server.port}/echo")
    assert (missing.http_version, missing.status_code) == ("HTTP/2", 404)
    assert (wrong.http_version, wrong.status_code) == ("HTTP/2", 405)


class Order(BaseModel):
    name: str
    quantity: int


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict:
        return {"order_id": order_id}

    @app.post("/orders")
    async def create_order(order: Order) -> dict:
        return {"name": order.name, "total": order.quantity * 2}

    return app


def test_fastapi_over_h2(serve, certs):
    with serve(fastapi_app(), **tls_settings(certs)) as server, \
            httpx.Client(verify=certs.client_context(), http2=True, timeout=10) as client:
        got = client.get(f"https://localhost:{server.port}/orders/7")
        created = client.post(f"https://localhost:{server.port}/orders", json={"name": "tea", "quantity": 3})
        invalid = client.post(f"https://localhost:{server.port}/orders", json={"name": "tea"})
    assert got.http_version == "HTTP/2" and got.json() == {"order_id": 7}
    assert created.json() == {"name": "tea", "total": 6}
    assert invalid.status_code == 422


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed")
def test_starlette_with_curl_http2(serve, certs):
    with serve(STARLETTE, **tls_settings(certs)) as server:
        done = subprocess.run(
            ["curl", "-s", "-S", "--http2", "--cacert", certs.ca_file, "--max-time", "10",
             "-w", "\n%{http_version}", f"https://localhost:{server.port}/stream?n=3"],
            capture_output=True, text=True, timeout=20,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "line 0\nline 1\nline 2\n\n2"
