"""What a browser gets from gateway: `gateway --dev-tls examples.browser_demo:app`, then open
https://localhost:8000/ in a browser that trusts the development CA (`gateway certs` says how).

The page reports three things, in its text and in `window.results` (which the browser test
reads): the protocol the page came over (`h2` when the browser speaks HTTP/2), each chunk of a
streamed response as it arrived, and the echo of a WebSocket message. Over HTTP/2 the
WebSocket is an RFC 8441 extended CONNECT on the page's own connection; over HTTP/1.1 it is an
Upgrade on a connection of its own.
"""

from __future__ import annotations

import asyncio

CHUNKS = 5
# Long enough that a browser reads each chunk on its own, short enough for a test to wait for.
CHUNK_INTERVAL = 0.25

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gateway in a browser</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 2em; }
  dt { font-weight: bold; margin-top: 1em; }
  pre { margin: 0; }
</style>
</head>
<body>
<h1>gateway in a browser</h1>
<dl>
  <dt>Page protocol</dt><dd id="protocol">...</dd>
  <dt>Streamed response, chunk by chunk (ms after the request)</dt><dd><pre id="chunks">...</pre></dd>
  <dt>WebSocket echo</dt><dd id="echo">...</dd>
</dl>
<p id="status">running</p>
<script>
const results = { protocol: null, chunks: [], echo: null, errors: [], done: false };
window.results = results;
const show = (id, text) => { document.getElementById(id).textContent = text; };

function pageProtocol() {
  results.protocol = performance.getEntries()[0].nextHopProtocol;
  show("protocol", results.protocol);
}

async function stream() {
  const started = performance.now();
  const response = await fetch("/stream", { cache: "no-store" });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    results.chunks.push({ text: decoder.decode(value), ms: Math.round(performance.now() - started) });
    show("chunks", results.chunks.map((c) => `${c.ms} ms: ${c.text.trim()}`).join("\\n"));
  }
}

function echo() {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`wss://${location.host}/ws`);
    const message = `hello over ${results.protocol}`;
    socket.onopen = () => socket.send(message);
    socket.onmessage = (event) => {
      results.echo = event.data;
      show("echo", event.data);
      socket.close(1000);
    };
    socket.onclose = () => (results.echo === null ? reject(new Error("closed before the echo")) : resolve());
    socket.onerror = () => reject(new Error("WebSocket error"));
  });
}

async function run(step) {
  try {
    await step();
  } catch (error) {
    results.errors.push(`${step.name}: ${error}`);
  }
}

(async () => {
  await run(pageProtocol);
  await Promise.all([run(stream), run(echo)]);
  results.done = true;
  show("status", results.errors.length ? `failed: ${results.errors.join("; ")}` : "done");
})();
</script>
</body>
</html>
"""


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "http":
        if scope["path"] == "/stream":
            await stream(send)
        elif scope["path"] == "/":
            await respond(send, 200, "text/html; charset=utf-8", PAGE)
        else:
            await respond(send, 404, "text/plain; charset=utf-8", b"Not found\n")


async def respond(send, status: int, content_type: str, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")],
    })
    await send({"type": "http.response.body", "body": body})


async def stream(send) -> None:
    """Numbered lines, one per body message, with a pause before each after the first."""
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
        ],
    })
    for number in range(1, CHUNKS + 1):
        if number > 1:
            await asyncio.sleep(CHUNK_INTERVAL)
        await send({"type": "http.response.body", "body": f"chunk {number}\n".encode(),
                    "more_body": number < CHUNKS})


async def echo(receive, send) -> None:
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
