"""WebSocket echo: `gateway --dev-tls examples.websocket_echo:app`, then connect to
wss://localhost:8000/ (over HTTP/1.1, or HTTP/2 with a client that speaks RFC 8441). Every
message comes back as it was sent, until the client closes."""

from __future__ import annotations


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
