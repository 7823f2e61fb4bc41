"""Where the strict policy applies: a walk of one connection's request stream, in front of
either engine, element by element (request head, body, chunk line, chunk data, trailers).

Both engines parse only what the scanner let through, one checked element at a time, so a
verdict of strict.py comes at the same point of the stream and in the same order whichever
engine parses it. The scanner also bounds what it holds back: a head or trailer section by
`max_head_size`, a chunk line by MAX_CHUNK_LINE.
"""

from __future__ import annotations

from .engine import Headers, RequestError
from .strict import (
    CHUNKED,
    MAX_CHUNK_LINE,
    Meaning,
    check_head,
    check_request_line,
    check_trailers,
    chunk_size,
    lines_prefix_ok,
    parse_field_line,
    request_line_prefix_ok,
)

# Where a Scanner is in the request stream.
_HEAD = 0  # a request head comes next
_FRAMING = 1  # the engine is parsing the head just let through; its framing comes with `head`
_BODY = 2  # `left` bytes of a Content-Length body
_CHUNK_LINE = 3
_CHUNK_DATA = 4  # `left` bytes of chunk data
_CHUNK_END = 5  # the CRLF after chunk data
_TRAILERS = 6
_SWITCHED = 7  # after a request that may switch protocols: no longer HTTP/1.1 to check


class Scanner:
    """Follows one connection's request stream in front of the engine: the engine parses only
    what the scanner let through, so both engines see the same verdicts at the same points.

    An element not complete yet (a head, a chunk line, the CRLF after chunk data, a trailer
    section) is held back until it is, then checked whole: an unfinished head is only checked
    for bytes no request line may hold and for its size. A `full` scanner checks every line
    and computes the framing itself (in front of h11, which is lenient); the other checks the
    request line, lets llhttp refuse bad header lines as it does, and learns each head's
    framing from `head`, which the engine calls once llhttp has parsed it. Chunk lines,
    the CRLF after chunk data and trailers are checked here in both cases.

    A refusal is kept in `error` rather than raised: the engine first parses what came before
    it, so that earlier pipelined requests are answered in order."""

    __slots__ = ("max_head_size", "full", "state", "left", "held", "line_end", "head_size",
                 "switching", "error")

    def __init__(self, max_head_size: int, full: bool) -> None:
        self.max_head_size = max_head_size
        self.full = full
        self.state = _HEAD
        self.left = 0
        # The element held back, grown in place; b"" (shared, never grown) when none is.
        self.held: bytearray | bytes = b""
        self.line_end = 0  # where the held head's request line ends, once it was checked
        self.head_size = 0
        self.switching = False
        self.error: RequestError | None = None

    def at_head(self) -> bool:
        """A request head comes next, and nothing of it is held or refused."""
        return self.state == _HEAD and not self.held and self.error is None

    def receive(self, data: bytes) -> bytes:
        """The bytes to scan next: `data` after what was held back, once the held element is
        complete; b"" while it is not (or after a refusal)."""
        if self.error is not None:
            return b""
        held = self.held
        if not held:
            return data
        start = len(held)
        held += data  # type: ignore[operator]  # a bytearray: `held` is not empty
        if not data or not self._held_complete(start):
            return b""
        self.held = b""
        # What was known of the held bytes goes with them: the C path (wire.py) may read the
        # head they complete without `scan`, and the next head held must be checked afresh.
        self.line_end = 0
        return bytes(held)

    def scan(self, data: bytes, pos: int) -> int:
        """Check data[pos:]; returns the offset the engine may parse up to. What lies beyond
        is held back, refused (`error`), or (not `full`) waits for the engine's `head` call."""
        end = len(data)
        while pos < end:
            state = self.state
            try:
                if state == _HEAD:
                    eol = data.find(b"\r\n", pos)
                    if eol < 0:
                        return self._hold(data, pos)
                    stop = data.find(b"\r\n\r\n", eol)
                    # llhttp checks the target's bytes as it parses, but a held head is not
                    # parsed until it is complete: then they are checked here.
                    check_request_line(data[pos:eol], self.full or stop < 0)
                    if stop < 0:
                        self.line_end = eol + 2 - pos
                        return self._hold(data, pos)
                    self.head_size = stop + 4 - pos
                    self.state = _FRAMING
                    if not self.full:
                        return stop + 4
                    self._read_head(data[pos:stop])
                    pos = stop + 4
                elif state in (_BODY, _CHUNK_DATA):
                    take = min(self.left, end - pos)
                    pos += take
                    self.left -= take
                    if not self.left:
                        if state == _BODY:
                            self._message_end()
                        else:
                            self.state = _CHUNK_END
                elif state == _CHUNK_LINE:
                    eol = data.find(b"\r\n", pos)
                    if eol < 0:
                        return self._hold(data, pos)
                    if eol - pos > MAX_CHUNK_LINE:
                        raise RequestError(400, "chunk line too long")
                    size = chunk_size(data[pos:eol])
                    pos = eol + 2
                    if not size:
                        self.state = _TRAILERS
                    elif end - pos >= size + 2:
                        # The whole chunk is here: one step, as many small chunks in one
                        # read are where a walk in Python costs the most.
                        pos += size
                        if not data.startswith(b"\r\n", pos):
                            raise RequestError(400, "chunk data not followed by CRLF")
                        pos += 2
                    else:
                        self.state = _CHUNK_DATA
                        self.left = size
                elif state == _CHUNK_END:
                    if end - pos < 2 and data[pos:] == b"\r":
                        return self._hold(data, pos)
                    if not data.startswith(b"\r\n", pos):
                        raise RequestError(400, "chunk data not followed by CRLF")
                    pos += 2
                    self.state = _CHUNK_LINE
                elif state == _TRAILERS:
                    if data.startswith(b"\r\n", pos):
                        pos += 2
                        self._message_end()
                        continue
                    stop = data.find(b"\r\n\r\n", pos)
                    if stop < 0:
                        return self._hold(data, pos)
                    check_trailers(data[pos:stop].split(b"\r\n"))
                    if stop + 4 - pos > self.max_head_size:
                        raise RequestError(431, "request trailers too large")
                    pos = stop + 4
                    self._message_end()
                elif state == _SWITCHED:
                    return end
                else:  # _FRAMING: llhttp did not end the head where the scanner did
                    raise RequestError(400, "the request head could not be parsed")
            except RequestError as exc:
                self.error = exc
                return pos
        return pos

    def head(self, method: str, target: bytes, version: str, headers: Headers) -> Meaning:
        """The engine parsed the head that `scan` let through: what it means (`check_head`),
        after which the scanner follows its body. Raises RequestError."""
        if self.state != _FRAMING:
            raise RequestError(400, "the request head could not be parsed")
        meaning = check_head(method, target, version, headers)
        # Checked after the head's syntax and meaning, as llhttp reports those while parsing.
        if self.head_size > self.max_head_size:
            raise RequestError(431, "request head too large")
        length = meaning[1]
        self.switching = meaning[2]
        if not length:
            self._message_end()
        elif length == CHUNKED:
            self.state = _CHUNK_LINE
        else:
            self.state = _BODY
            self.left = length
        return meaning

    def _read_head(self, head: bytes) -> None:
        """A full scanner parses the head itself: the request line was checked already."""
        lines = head.split(b"\r\n")
        method, target, version = lines[0].split(b" ")
        headers = [parse_field_line(line) for line in lines[1:]]
        self.head(method.decode("ascii"), target, version[5:].decode("ascii"), headers)

    def _message_end(self) -> None:
        # h11 stops parsing after a request that may switch protocols; llhttp stops by itself.
        self.state = _SWITCHED if self.switching and self.full else _HEAD
        self.line_end = 0

    def _hold(self, data: bytes, pos: int) -> int:
        self.held = bytearray(memoryview(data)[pos:])
        self._held_complete(0)
        return pos

    def _held_complete(self, start: int) -> bool:
        """Whether the held element is complete now that bytes from `start` on were added,
        after the checks an unfinished element allows (`error` on a refusal): what no request
        line may begin with, a bare CR or LF, a control byte in a field line, the size."""
        held = self.held
        state = self.state
        if state == _CHUNK_END:
            return len(held) >= 2
        # A final CR may be the first half of a CRLF still on its way.
        check_from = max(0, start - 1)
        check_to = len(held) - held.endswith(b"\r")
        if state == _HEAD:
            if not self.line_end:
                eol = held.find(b"\r\n", check_from)
                if eol < 0:
                    if not request_line_prefix_ok(held, check_from, check_to):
                        self.error = RequestError(400, "not the start of a request line")
                    elif len(held) > self.max_head_size:
                        self.error = RequestError(431, "request head too large")
                    return False
                self.line_end = eol + 2
                try:
                    check_request_line(bytes(held[:eol]))
                except RequestError as exc:
                    self.error = exc
                    return False
            check_from = max(check_from, self.line_end)
        if not lines_prefix_ok(held, check_from, check_to):
            self.error = RequestError(400, "a bare CR or LF, or a control byte")
            return False
        if state == _CHUNK_LINE:
            if held.find(b"\r\n", check_from) >= 0:
                return True
            if len(held) > MAX_CHUNK_LINE:
                self.error = RequestError(400, "chunk line too long")
            return False
        if state == _TRAILERS and held.startswith(b"\r\n"):
            return True
        if held.find(b"\r\n\r\n", max(0, start - 3)) >= 0:
            return True
        if len(held) > self.max_head_size:
            what = "head" if state == _HEAD else "trailers"
            self.error = RequestError(431, f"request {what} too large")
        return False
