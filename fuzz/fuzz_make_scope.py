"""Fuzz `make_scope` (gateway/h1/_wire.c) against `asgi.http_scope`, which it stands in for.

The target, the addresses, the scheme, the method and the lifespan state come from the
fuzzer's bytes. Where C does not return NotImplemented (a percent-escape, which http_scope
unquotes), its dict must be http_scope's: the same keys in the same order, equal values of the
same types, the request's headers and extensions as given and a state of its own; and the
template it copies must be left as it was.
"""

from __future__ import annotations

from typing import Any

import atheris
import harness

asgi, wire = harness.import_gateway("gateway.asgi", "gateway.h1.wire")
make_scope = wire.make_scope
assert make_scope is not None

TEMPLATE = asgi.scope_template("1.1")
SERVERS = [("127.0.0.1", 8000), ("::1", 443), ("/run/gateway.sock", None), None]
CLIENTS = [("127.0.0.1", 51000), ("10.0.0.1", 1), None]
STATES: list[dict[str, Any]] = [{}, {"db": "pool"}, {"a": 1, "b": [2]}]


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    server = SERVERS[fdp.ConsumeIntInRange(0, len(SERVERS) - 1)]
    client = CLIENTS[fdp.ConsumeIntInRange(0, len(CLIENTS) - 1)]
    scheme = "https" if fdp.ConsumeBool() else "http"
    method = ("GET", "POST", "HEAD", "PATCH")[fdp.ConsumeIntInRange(0, 3)]
    state = STATES[fdp.ConsumeIntInRange(0, len(STATES) - 1)]
    target = fdp.ConsumeBytes(fdp.remaining_bytes())
    headers = [(b"host", b"x")]
    extensions: dict[str, Any] = {}
    made = make_scope(TEMPLATE, server, client, scheme, method, target, headers, state, extensions)
    if made is NotImplemented:
        assert b"%" in target, target
        return
    expected = asgi.http_scope("1.1", server, client, scheme, method, target, headers, "", state,
                               extensions)
    harness.same("make_scope differs from http_scope",
                 [(key, type(value), value) for key, value in made.items()],
                 [(key, type(value), value) for key, value in expected.items()], target=target)
    assert made["headers"] is headers and made["extensions"] is extensions, target
    assert made["state"] is not state and made["state"] == state, target
    assert asgi.scope_template("1.1") == TEMPLATE, TEMPLATE


def seeds() -> list[bytes]:
    """Targets as browsers and tools send them, after the five bytes of choices."""
    targets = [b"/", b"/a/b.js?v=3", b"/?", b"/?x=1&y=%20", b"/a?b?c", b"//x", b"/caf\xe9",
               b"*", b"", b"?q", b"/a%2Fb", b"/" + b"p" * 3000]
    return [bytes([i % 4, i % 3, i % 2, i % 4, i % 3]) + target for i, target in enumerate(targets)]


if __name__ == "__main__":
    harness.main(test_one_input, seeds)
