"""Fuzz the access line made in C (`line`, gateway/_accessline.c) against its Python twin,
`gateway.access.gateway_line_py`.

Scopes, statuses, sizes, durations, prefixes and ends are built from the fuzzer's bytes: keys
there or not, in any order, values of the usual type or another, str with any code point
(lone surrogates too), numbers past 64 bits, any double and the ties of `%.1f`. Where C does
not return NotImplemented (which hands the line to the twin), it must make the twin's line,
or raise the twin's exception type with its message. ASan also sees a scope value C still
holds being freed, as an app's key with a colliding hash could do.
"""

from __future__ import annotations

from typing import Any

import atheris
import harness

(access,) = harness.import_gateway("gateway.access")
line_c = access._line_c
assert line_c is not None

FDP = atheris.FuzzedDataProvider


def text(fdp: FDP, usual: list[str]) -> str:
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind <= 2:
        return usual[fdp.ConsumeIntInRange(0, len(usual) - 1)]
    if kind <= 4:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)).decode("latin-1")
    if kind == 5:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16))
    if kind == 6:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16)).decode("utf-8", "replace")
    return "x" * fdp.ConsumeIntInRange(0, 5000)  # around C's 4096-byte buffer


def raw_bytes(fdp: FDP) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 5:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24))
    if kind == 6:
        return b"/" * fdp.ConsumeIntInRange(3900, 4200)
    if kind == 7:
        return None
    if kind == 8:
        return fdp.ConsumeBytes(4).decode("latin-1")
    return bytearray(fdp.ConsumeBytes(4))


def integer(fdp: FDP) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 4:
        return fdp.ConsumeIntInRange(0, 999)
    if kind <= 6:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 10))  # signed, up to 80 bits
    if kind == 7:
        return (-1) ** fdp.ConsumeIntInRange(0, 1) * (2**63 + fdp.ConsumeIntInRange(-2, 2))
    if kind == 8:
        return None
    return ["200", True, 200.0][fdp.ConsumeIntInRange(0, 2)]


def seconds(fdp: FDP) -> float:
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind <= 1:
        return fdp.ConsumeFloat()  # NaN, infinities, subnormals
    if kind <= 3:
        return fdp.ConsumeFloatInRange(0.0, 2000.0)
    if kind == 4:  # ties in decimal (x.x5 ms) and the doubles next to them
        value = fdp.ConsumeIntInRange(0, 10**8) / 20 / 1000
        return value * (1 + fdp.ConsumeIntInRange(-2, 2) * 2**-52)
    if kind == 5:
        return -(fdp.ConsumeIntInRange(0, 10**8) / 20 / 1000)
    if kind == 6:
        return (fdp.ConsumeIntInRange(0, 10**7) / 10 + 0.05) / 1000
    return [0.0, -0.0, 1e-7, 999.99995, 1000.0, 5e-324, 1e300, 1.7976931348623157e305][
        fdp.ConsumeIntInRange(0, 7)]


def client(fdp: FDP) -> Any:
    kind = fdp.ConsumeIntInRange(0, 9)
    if kind <= 4:
        return (text(fdp, ["127.0.0.1", "::1", "10.0.0.7", ""]), integer(fdp))
    if kind == 5:
        return None
    if kind == 6:
        return ("/run/s.sock", None)
    if kind == 7:
        return ()
    if kind == 8:
        return [text(fdp, ["127.0.0.1"]), integer(fdp)]
    return (text(fdp, ["h"]), integer(fdp), 3)


def scope(fdp: FDP) -> dict[Any, Any]:
    made: dict[Any, Any] = {}
    keys = ["type", "client", "method", "raw_path", "query_string", "http_version", "path", 7]
    # From a varying first key: C looks the keys up, so their order in the dict must not matter.
    for key in keys[fdp.ConsumeIntInRange(0, len(keys) - 1):] + keys:
        if key in made or not fdp.ConsumeBool():
            continue
        if key == "client":
            made[key] = client(fdp)
        elif key == "method":
            made[key] = text(fdp, ["GET", "POST", "HEAD"]) if fdp.ConsumeIntInRange(0, 5) else b"GET"
        elif key in ("raw_path", "query_string"):
            made[key] = raw_bytes(fdp)
        elif key == "http_version":
            made[key] = text(fdp, ["1.1", "1.0", "2"]) if fdp.ConsumeIntInRange(0, 5) else None
        else:
            made[key] = "http"
    return made


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    """Any exception is an outcome here: C must raise what the twin raises."""
    try:
        return "ok", function(*args)
    except Exception as exc:  # noqa: BLE001 - compared with the other side's
        return type(exc).__name__, str(exc)


def test_one_input(raw: bytes) -> None:
    fdp = FDP(raw)
    sc = scope(fdp)
    status = integer(fdp)
    size = integer(fdp)
    secs = seconds(fdp)
    prefix = text(fdp, ["", "INFO:     ", "P "])
    end = ["\n", ""][fdp.ConsumeIntInRange(0, 1)] if fdp.ConsumeIntInRange(0, 3) else text(fdp, ["\n"])
    made = outcome(line_c, prefix, sc, status, size, secs, end)
    if made != ("ok", NotImplemented):
        harness.same("the C access line differs from gateway_line_py", made,
                     outcome(access.gateway_line_py, sc, status, size, secs, prefix, end),
                     scope=sc, status=status, size=size, seconds=secs, prefix=prefix, end=end)


if __name__ == "__main__":
    harness.main(test_one_input, lambda: harness.random_seeds(16))
