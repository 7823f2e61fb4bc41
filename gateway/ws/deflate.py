"""permessage-deflate (RFC 7692) with the inflated size of a message bounded.

wsproto inflates whatever a frame's payload expands to: 64 KiB of a client's deflate can
become 64 MiB before the message size is ever compared with `--ws-max-size`. Here inflation
stops at the limit and the connection is closed with 1009 (message too big). And a control
frame between the fragments of a compressed message (RFC 6455 section 5.4 allows it) no
longer makes wsproto forget that the message is compressed.
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits


class BoundedDeflate(PerMessageDeflate):
    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self.inflated = 0  # of the message being received
        self.control = False  # the frame being received is a control frame

    def frame_inbound_header(self, proto: Any, opcode: Opcode, rsv: RsvBits,
                             payload_length: int) -> CloseReason | RsvBits:
        self.control = opcode.iscontrol()
        if self.control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if self.control or not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self.max_size - self.inflated
        try:
            out = self._decompressor.decompress(bytes(data), room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self.inflated += len(out)
        if self.inflated > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if self.control:
            return None
        out = super().frame_inbound_complete(proto, fin)
        if fin:
            self.inflated = 0
        return out
