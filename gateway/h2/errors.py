"""The RFC 9113 error code for what h2 reports as a plain protocol error."""

from __future__ import annotations

import h2.exceptions
import hpack
import hyperframe.exceptions
from h2.errors import ErrorCodes


def precise_error_code(exc: h2.exceptions.ProtocolError) -> ErrorCodes | None:
    """h2 reports some connection errors as PROTOCOL_ERROR where RFC 9113 names another code:
    a broken header block (section 4.3) and a frame of the wrong length (sections 6.5-6.9)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, hpack.HPACKError):
        return ErrorCodes.COMPRESSION_ERROR
    if isinstance(cause, hyperframe.exceptions.InvalidDataError) and any(
        word in str(cause) for word in ("payload", "length", "bytes")
    ):
        return ErrorCodes.FRAME_SIZE_ERROR
    return None
