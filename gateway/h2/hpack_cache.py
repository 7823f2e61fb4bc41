"""HPACK coders that reuse a header block while the dynamic table stands still.

HPACK is the largest cost of a small HTTP/2 request in pure Python. Yet on one connection the
same header block recurs: a client repeats its request fields, and an app its response fields.
Once those fields are in the dynamic table they encode to references that leave the table as it
was, and a block that leaves the table unchanged has the same meaning for as long as the table
does not change. So each coder keeps such blocks, keyed by their fields (encoder) or their bytes
(decoder), and forgets them all as soon as the table changes: a new Date value each second, or
any field added by the peer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import hpack
from hpack.hpack import DEFAULT_MAX_HEADER_LIST_SIZE
from hpack.table import HeaderTable

# Blocks kept per coder, and the largest block the decoder keeps: enough for the fields a
# client or app repeats, too little for a peer to grow a connection's memory by.
_MAX_ENTRIES = 16
_MAX_DECODED_BLOCK = 1024


class _CountedTable(HeaderTable):
    """A header table that counts its changes, so a block can be known to be still valid."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingEncoder(hpack.Encoder):
    """Encodes response fields; a block that only referred to the table is reused as is."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = _CountedTable()
        self._blocks: dict[tuple[Any, ...], bytes] = {}
        self._seen_changes = 0

    def encode(self, headers: Iterable[Any], huffman: bool = True) -> bytes:  # type: ignore[override]
        table = self.header_table
        if table.changes != self._seen_changes:
            self._blocks.clear()
            self._seen_changes = table.changes
        fields = tuple(headers)
        block = self._blocks.get(fields)
        if block is not None:
            return block
        block = super().encode(fields, huffman)
        if table.changes == self._seen_changes and len(self._blocks) < _MAX_ENTRIES:
            self._blocks[fields] = block
        return block


class CachingDecoder(hpack.Decoder):
    """Decodes request fields; a block seen before, while the table stands still, is not
    decoded again."""

    def __init__(self, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        super().__init__(max_header_list_size)
        self.header_table = _CountedTable()
        self._fields: dict[tuple[bytes, bool], tuple[Any, ...]] = {}
        self._seen_changes = 0

    def decode(self, data: bytes, raw: bool = False) -> tuple[Any, ...] | list[Any]:  # type: ignore[override]
        """A block decoded before comes back as the same tuple (the connection knows it then
        by identity, see requests.py's RequestHead); a new one as a list."""
        table = self.header_table
        if table.changes != self._seen_changes:
            self._fields.clear()
            self._seen_changes = table.changes
        key = (bytes(data), raw)
        fields = self._fields.get(key)
        if fields is not None:
            return fields
        decoded = list(super().decode(data, raw))
        if (table.changes == self._seen_changes and len(data) <= _MAX_DECODED_BLOCK
                and len(self._fields) < _MAX_ENTRIES):
            self._fields[key] = tuple(decoded)
        return decoded
