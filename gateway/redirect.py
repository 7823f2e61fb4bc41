"""The app behind --redirect-bind: every request, whatever it asks, is sent to the same URL
over HTTPS with 308 (which, unlike 301, keeps the method and body)."""

from __future__ import annotations

from .loading import Message, Receive, Scope, Send


class RedirectToHTTPS:
    """`port`: the HTTPS port the URLs name; 443 is left out of them."""

    def __init__(self, port: int | None) -> None:
        self.port = port

    def location(self, scope: Scope) -> bytes:
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if host.startswith(b"["):
            host = host[: host.find(b"]") + 1]
        else:
            host = host.partition(b":")[0]
        if not host or any(c in host for c in b"/\\@?# "):
            server = scope.get("server") or ("localhost", None)
            host = (f"[{server[0]}]" if ":" in server[0] else server[0]).encode()
        port = b"" if self.port in (None, 443) else b":%d" % self.port
        query = scope["query_string"]
        return b"https://" + host + port + scope["raw_path"] + (b"?" + query if query else b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        start: Message = {"status": 308, "headers": [
            (b"location", self.location(scope)), (b"content-length", b"0")]}
        if scope["type"] == "websocket":
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", **start})
        await send({"type": "http.response.body", "body": b""})
