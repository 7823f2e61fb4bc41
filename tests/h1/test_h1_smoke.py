import httpx


async def hello(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_plain_and_tls(serve, certs):
    with serve(hello) as server:
        response = httpx.get(server.url + "/")
        assert response.status_code == 200
        assert response.text == "hello"
    with serve(hello, certfile=certs.cert_file, keyfile=certs.key_file) as server:
        response = httpx.get(f"https://localhost:{server.port}/", verify=certs.client_context())
        assert response.status_code == 200
        assert response.http_version == "HTTP/1.1"
