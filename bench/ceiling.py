"""The ceiling: the most HTTP/1.1 one Python process can answer, to measure servers against.

A uvloop ``asyncio.Protocol`` that parses nothing: for every end of a request head
(``CRLF CRLF``) it sees, it writes the same canned keep-alive response the app would
make (200, ``Hello, world!``). No ASGI, no scope, no headers read, no body support, so it
only serves rows of GET requests without bodies (``Scenario.canned``). What a real server
reaches as a fraction of this is what is left to win in Python.

It also serves the plain WebSocket echo row: a head asking for a WebSocket is answered
101, and from then on every frame is unmasked and sent back, the frames of one read in one
write. No checks, no fragments, no extensions, no ASGI: the least a Python echo does.

Run: ``python bench/ceiling.py --port PORT [--certfile CERT --keyfile KEY]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import ssl

import uvloop

RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\n"
            b"Hello, world!")
END = b"\r\n\r\n"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_KEY = b"sec-websocket-key:"
CLOSE = 8


class Canned(asyncio.Protocol):
    """One canned response per request head; the tail keeps a CRLF CRLF split across reads."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.tail = b""
        self.echoing = False

    def data_received(self, data: bytes) -> None:
        if self.echoing:
            self.echo(data)
            return
        data = self.tail + data
        if WS_KEY in data.lower():
            self.accept(data)
            return
        heads = data.count(END)
        if heads:
            self.transport.write(RESPONSE * heads)
        last = data.rfind(END)
        self.tail = data[-3:] if last < 0 else data[last + 4:][-3:]

    def accept(self, data: bytes) -> None:
        """The WebSocket handshake's 101, once its head is whole."""
        end = data.find(END)
        if end < 0:
            self.tail = data
            return
        start = data.lower().index(WS_KEY) + len(WS_KEY)
        key = data[start:data.index(b"\r\n", start)].strip()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                             b"connection: upgrade\r\nsec-websocket-accept: " + accept + END)
        self.echoing = True
        self.tail = b""
        if len(data) > end + 4:
            self.echo(data[end + 4:])

    def echo(self, data: bytes) -> None:
        """Every whole frame back, unmasked; a part of one waits in the tail."""
        data = self.tail + data if self.tail else data
        out = []
        pos, size = 0, len(data)
        while size - pos >= 2:
            length, at = data[pos + 1] & 0x7F, pos + 2
            if length == 126:
                length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
            elif length == 127:
                length, at = int.from_bytes(data[at:at + 8], "big"), at + 8
            if size - at < 4 + length:
                break
            mask = int.from_bytes(data[at:at + 4] * (length // 4 + 1), "little")
            payload = int.from_bytes(data[at + 4:at + 4 + length], "little") ^ mask
            opcode = data[pos] & 0x0F
            header = data[pos:pos + 1] + (
                bytes((length,)) if length < 126 else
                b"\x7e" + length.to_bytes(2, "big") if length < 65536 else
                b"\x7f" + length.to_bytes(8, "big"))
            out.append(header + payload.to_bytes(length + 4, "little")[:length])
            pos = at + 4 + length
            if opcode == CLOSE:
                self.transport.write(b"".join(out))
                self.transport.close()
                return
        self.tail = data[pos:]
        if out:
            self.transport.write(b"".join(out))


async def serve(port: int, context: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Canned, "127.0.0.1", port, ssl=context, backlog=4096)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    context = None
    if args.certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.certfile, args.keyfile)
    uvloop.run(serve(args.port, context))


if __name__ == "__main__":
    main()
