"""Real Starlette and FastAPI apps served end to end over TLS, with httpx as the client."""

from __future__ import annotations

import contextlib
import hashlib
import threading

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

pytestmark = pytest.mark.timeout(30)


# -- Starlette --------------------------------------------------------------------------------


def starlette_app(background_done: threading.Event, shutdown: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield {"greeting": "hello from lifespan"}
        shutdown.append("shut down")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({
            "id": request.path_params["item_id"],
            "q": request.query_params.get("q"),
            "greeting": request.state.greeting,
            "url": str(request.url_for("item", item_id=7)),
        })

    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                             "type": request.headers.get("content-type")})

    async def stream(request: Request) -> StreamingResponse:
        async def numbers():
            for number in range(5):
                yield f"line {number}\n".encode()

        return StreamingResponse(numbers(), media_type="text/plain")

    def work() -> None:
        background_done.set()

    async def with_task(request: Request) -> PlainTextResponse:
        return PlainTextResponse("accepted", status_code=202, background=BackgroundTask(work))

    return Starlette(
        routes=[
            Route("/items/{item_id:int}", item, name="item"),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/task", with_task, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


@pytest.fixture
def starlette_server(serve, certs):
    background_done = threading.Event()
    shutdown: list[str] = []
    app = starlette_app(background_done, shutdown)
    with serve(app, certfile=certs.cert_file, keyfile=certs.key_file, lifespan="on") as server, \
            httpx.Client(base_url=f"https://localhost:{server.port}", verify=certs.client_context(),
                         timeout=5) as client:
        yield client, background_done
    assert shutdown == ["shut down"]


def test_starlette_path_params_json_and_lifespan_state(starlette_server):
    client, _ = starlette_server
    response = client.get("/items/42", params={"q": "a b"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": 42, "q": "a b", "greeting": "hello from lifespan",
        "url": f"https://localhost:{client.base_url.port}/items/7",
    }


def test_starlette_request_body(starlette_server):
    client, _ = starlette_server
    payload = bytes(range(256)) * 4096  # 1 MiB
    response = client.post("/echo", content=payload,
                           headers={"content-type": "application/octet-stream"})
    assert response.json() == {"length": len(payload),
                               "sha256": hashlib.sha256(payload).hexdigest(),
                               "type": "application/octet-stream"}


def test_starlette_chunked_request_body(starlette_server):
    client, _ = starlette_server

    def chunks():
        for _ in range(10):
            yield b"x" * 10000

    response = client.post("/echo", content=chunks())
    assert response.json()["length"] == 100000


def test_starlette_streaming_response(starlette_server):
    client, _ = starlette_server
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"line {n}" for n in range(5)]


def test_starlette_background_task_runs_after_the_response(starlette_server):
    client, background_done = starlette_server
    response = client.post("/task")
    assert response.status_code == 202
    assert response.text == "accepted"
    assert background_done.wait(5)


def test_starlette_404_and_405(starlette_server):
    client, _ = starlette_server
    assert client.get("/nowhere").status_code == 404
    assert client.get("/echo").status_code == 405
    assert client.get("/items/not-a-number").status_code == 404


def test_starlette_behind_root_path(serve, certs):
    app = starlette_app(threading.Event(), [])
    with serve(app, certfile=certs.cert_file, keyfile=certs.key_file, root_path="/api") as server:
        response = httpx.get(f"https://localhost:{server.port}/items/3",
                             verify=certs.client_context(), timeout=5)
    assert response.status_code == 200
    assert response.json()["url"] == f"https://localhost:{server.port}/api/items/7"


# -- FastAPI ----------------------------------------------------------------------------------


class ItemIn(BaseModel):
    name: str
    price: float
    tags: list[str] = []


class ItemOut(ItemIn):
    id: int
    owner: str


def fastapi_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield {"store": {}}

    app = FastAPI(lifespan=lifespan)

    def current_user(x_user: str = Header()) -> str:
        if x_user == "mallory":
            raise HTTPException(status_code=403, detail="forbidden")
        return x_user

    @app.post("/items", response_model=ItemOut, status_code=201)
    async def create_item(item: ItemIn, request: Request, user: str = Depends(current_user)):
        store = request.state.store
        new = ItemOut(id=len(store) + 1, owner=user, **item.model_dump())
        store[new.id] = new
        return new

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def read_item(item_id: int, request: Request):
        try:
            return request.state.store[item_id]
        except KeyError:
            raise HTTPException(status_code=404, detail=f"item {item_id} not found") from None

    return app


@pytest.fixture
def fastapi_client(serve, certs):
    with serve(fastapi_app(), certfile=certs.cert_file, keyfile=certs.key_file, lifespan="on") \
            as server, httpx.Client(base_url=f"https://localhost:{server.port}",
                                    verify=certs.client_context(), timeout=5) as client:
        yield client


def test_fastapi_body_model_and_dependency(fastapi_client):
    response = fastapi_client.post("/items", json={"name": "lamp", "price": 12.5},
                                   headers={"x-user": "alice"})
    assert response.status_code == 201
    assert response.json() == {"name": "lamp", "price": 12.5, "tags": [], "id": 1,
                               "owner": "alice"}
    fetched = fastapi_client.get("/items/1")
    assert fetched.status_code == 200
    assert fetched.json()["owner"] == "alice"
    assert fetched.http_version == "HTTP/1.1"


def test_fastapi_http_exception_404(fastapi_client):
    response = fastapi_client.get("/items/99")
    assert response.status_code == 404
    assert response.json() == {"detail": "item 99 not found"}


def test_fastapi_dependency_rejects(fastapi_client):
    response = fastapi_client.post("/items", json={"name": "x", "price": 1},
                                   headers={"x-user": "mallory"})
    assert response.status_code == 403
    assert response.json() == {"detail": "forbidden"}


def test_fastapi_validation_errors(fastapi_client):
    missing_header = fastapi_client.post("/items", json={"name": "x", "price": 1})
    assert missing_header.status_code == 422
    bad_body = fastapi_client.post("/items", json={"name": "x", "price": "cheap"},
                                   headers={"x-user": "alice"})
    assert bad_body.status_code == 422
    assert any(error["loc"][-1] == "price" for error in bad_body.json()["detail"])
