"""Fuzz `frame_headers` (gateway/h1/_wire.c) against its Python twin, `frame_headers_py`, and
`frame_whole` against the encoder's own way (encode.py's ResponseEncoder without it).

The fields are built from the fuzzer's bytes: a list or tuple of items, mostly 2-tuples or
2-lists, some of another length or not a pair at all; names and values are bytes (the names
the function looks for, in any case, or any bytes), str, bytearray, a subclass of bytes, int
or None. C must give the twin's result, or raise the twin's exception type with its message,
or return NotImplemented (the twin then runs in its place). It must not change its argument.
With a status, a body and the encoder's flags from the same bytes, the encoder with
`frame_whole` must write what it writes without, or raise the same, and be left in the same
state.
"""

from __future__ import annotations

from typing import Any

import atheris
import harness

wire, encode, engine = harness.import_gateway("gateway.h1.wire", "gateway.h1.encode",
                                              "gateway.h1.engine")
frame_c = wire._frame_headers_c
assert frame_c is not None and encode.ResponseEncoder.whole is not None


class Defaults:
    """What ServerState gives the encoder: its server and --header lines, and a date."""

    head_lines = b"server: gateway\r\n"
    header_lines = b""
    date_line = b"date: Mon, 30 Nov 2026 22:00:00 GMT\r\n"


class EncoderWay(encode.ResponseEncoder):
    """Every response framed in Python: the reference for `frame_whole`."""

    __slots__ = ()
    whole = None


STATUSES = [200, 201, 204, 304, 404, 500]
BODIES = [b"", b"Hello, world!", b"x" * 12, b"x" * 13, b"y" * (encode.GATHER_FROM - 1),
          b"z" * encode.GATHER_FROM]

NAMES = [b"content-length", b"transfer-encoding", b"connection", b"server", b"date",
         b"content-type", b"x-a"]
VALUES = [b"chunked", b" chunked\t", b"\x0bchunked\x0c", b"close", b"keep-alive, close", b"0", b"13",
          b"gzip, chunked", b"", b"a\r\nb", b"\x00", b"\x7f", b"\t", b"\xe9"]


class Bytes(bytes):
    """A subclass of bytes: C checks the exact type, as the twin's name check does."""


def any_case(fdp: atheris.FuzzedDataProvider, name: bytes) -> bytes:
    """C lower-cases the names it looks for by hand; the twin with bytes.lower()."""
    mask = fdp.ConsumeIntInRange(0, (1 << len(name)) - 1)
    return bytes(c ^ 0x20 if mask >> i & 1 and 0x61 <= c | 0x20 <= 0x7A else c for i, c in enumerate(name))


def element(fdp: atheris.FuzzedDataProvider, is_name: bool) -> Any:
    """Mostly what an app sends, often what C must refuse with the twin's message."""
    kind = fdp.ConsumeIntInRange(0, 15)
    if kind <= 5:
        if is_name:
            return any_case(fdp, NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)])
        return VALUES[fdp.ConsumeIntInRange(0, len(VALUES) - 1)]
    if kind <= 10:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    if kind == 11:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4)).decode("latin-1")
    if kind == 12:
        return bytearray(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4)))
    if kind == 13:
        if is_name:
            return Bytes(any_case(fdp, NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]))
        return Bytes(fdp.ConsumeBytes(4))
    if kind == 14:
        return fdp.ConsumeIntInRange(0, 99)
    return None


def item(fdp: atheris.FuzzedDataProvider) -> Any:
    """C unpacks pairs itself; the twin with `name, value = header`, whatever the item is."""
    kind = fdp.ConsumeIntInRange(0, 15)
    if kind <= 9:
        return (element(fdp, True), element(fdp, False))
    if kind <= 12:
        return [element(fdp, True), element(fdp, False)]
    if kind == 13:
        if fdp.ConsumeBool():
            return tuple(element(fdp, True) for _ in range(fdp.ConsumeIntInRange(0, 3)))
        return [element(fdp, True) for _ in range(3)]
    if kind == 14:
        return element(fdp, True)
    return {b"content-length": element(fdp, False)} if fdp.ConsumeBool() else b"ab"


def outcome(function: Any, headers: Any) -> Any:
    """As tests/h1/test_h1_wire.py compares them: the result, or the exception's type and
    message. Any other exception than these two is raised: a crash."""
    try:
        result = function(headers)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)
    return result if result is NotImplemented else ("ok", tuple(result))


def encoded(encoder_class: type, args: tuple) -> Any:
    """What the connection would write, or the exception the app's send would get, and the
    state the encoder is left in."""
    encoder = encoder_class(Defaults())
    try:
        made = encoder.start(*args)
    except (TypeError, ValueError, engine.BodyLengthError) as exc:
        made = type(exc).__name__, str(exc)
    return made, encoder.mode, encoder.remaining


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    items = [item(fdp) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    headers = tuple(items) if fdp.ConsumeBool() else items
    before = repr(headers)
    made = outcome(frame_c, headers)
    assert repr(headers) == before, f"frame_headers changed its argument: {before} -> {headers!r}"
    if made is not NotImplemented:
        harness.same("frame_headers differs from frame_headers_py", made,
                     outcome(wire.frame_headers_py, headers), headers=headers)
    args = (STATUSES[fdp.ConsumeIntInRange(0, len(STATUSES) - 1)], headers,
            BODIES[fdp.ConsumeIntInRange(0, len(BODIES) - 1)], fdp.ConsumeBool(),
            fdp.ConsumeBool(), fdp.ConsumeBool(), fdp.ConsumeBool())
    harness.same("the encoder differs with frame_whole", encoded(encode.ResponseEncoder, args),
                 encoded(EncoderWay, args), args=args)


if __name__ == "__main__":
    harness.main(test_one_input, lambda: harness.random_seeds(16))
