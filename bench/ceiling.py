"""The ceiling: the most HTTP/1.1 one Python process can answer, to measure servers against.

A uvloop ``asyncio.Protocol`` that parses nothing: for every end of a request head
(``CRLF CRLF``) it sees, it writes the same canned keep-alive response the app would
make (200, ``Hello, world!``). No ASGI, no scope, no headers read, no body support, so it
only serves rows of GET requests without bodies (``Scenario.canned``). What a real server
reaches as a fraction of this is what is left to win in Python.

Run: ``python bench/ceiling.py --port PORT [--certfile CERT --keyfile KEY]``
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

import uvloop

RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\n"
            b"Hello, world!")
END = b"\r\n\r\n"


class Canned(asyncio.Protocol):
    """One canned response per request head; the tail keeps a CRLF CRLF split across reads."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        heads = data.count(END)
        if heads:
            self.transport.write(RESPONSE * heads)
        last = data.rfind(END)
        self.tail = data[-3:] if last < 0 else data[last + 4:][-3:]


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
