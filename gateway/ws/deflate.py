"""permessage-deflate (RFC 7692) for the frame layer: one message in, one deflated payload out,
and inflation that stops at `--ws-max-size`.

wsproto's extension is the reference (the tests run both on the same messages) but costs a
frame-by-frame walk through its generic extension hooks; on the deflate echo benchmark that walk,
not zlib, was most of the server's time per message. Here a message is compressed in one
`compress` + `flush(Z_SYNC_FLUSH)` with the trailing `00 00 ff ff` dropped (section 7.2.1), and a
frame's payload is inflated in one call bounded by what the message may still grow to, so that
64 KiB of a client's deflate never becomes 64 MiB before the size is compared (a deflate bomb is
refused while inflating, not after).
"""

from __future__ import annotations

import zlib

_TAIL = b"\x00\x00\xff\xff"  # section 7.2.2: appended to a message's payload before inflating


class MessageTooBig(Exception):
    """The message inflates past `--ws-max-size`: close with 1009."""


class MessageDeflate:
    """One connection's negotiated permessage-deflate, server side. Window bits are the
    negotiated ones: ours (server_max_window_bits) for what we deflate, the client's
    (client_max_window_bits) for what we inflate; `*_no_context_takeover` drops that side's
    zlib state after each message."""

    __slots__ = ("max_size", "server_no_context_takeover", "client_no_context_takeover",
                 "server_max_window_bits", "client_max_window_bits", "_compressor",
                 "_decompressor", "inflated")

    def __init__(self, max_size: int, *, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False, server_max_window_bits: int = 15,
                 client_max_window_bits: int = 15) -> None:
        self.max_size = max_size
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self.inflated = 0  # bytes of the message being received, inflated so far

    def compress(self, data: bytes) -> bytes:
        """A whole message's payload, to be sent with RSV1 set."""
        compressor = self._compressor
        if compressor is None:
            compressor = self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.server_max_window_bits)
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.server_no_context_takeover:
            self._compressor = None
        return out[:-4]

    def inflate(self, data: bytes, final: bool) -> bytes:
        """One frame's payload of a compressed message, inflated; `final` for its last frame.
        Raises MessageTooBig past the limit and zlib.error on corrupt data."""
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self.client_max_window_bits)
        room = self.max_size - self.inflated
        if final:
            # The tail completes the message's last deflate block: inflated in the same call,
            # and so under the same bound.
            data += _TAIL
        # max_length room + 1 (never 0, which would mean no bound): one byte past the room
        # tells a message that is too big from one that fills it exactly.
        out = decompressor.decompress(data, room + 1)
        if len(out) > room:
            raise MessageTooBig
        if final:
            self.inflated = 0
            if self.client_no_context_takeover:
                self._decompressor = None
        else:
            self.inflated += len(out)
        return out
