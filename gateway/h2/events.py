"""The events the fast engine (engine.py) reports, named and shaped as h2's are.

The connection (protocol.py) reads the same attributes from these as from h2's events, so one
set of handlers serves both engines; these are only smaller (slots, no repr machinery), since
a small request makes three of them.
"""

from __future__ import annotations

from typing import Any


class RequestReceived:
    __slots__ = ("stream_id", "headers", "stream_ended")

    def __init__(self, stream_id: int, headers: list[Any], stream_ended: bool | None) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.stream_ended = stream_ended  # True or None, as h2's event or None


class DataReceived:
    __slots__ = ("stream_id", "data", "flow_controlled_length")

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length


class StreamEnded:
    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class TrailersReceived:
    __slots__ = ("stream_id", "headers")

    def __init__(self, stream_id: int, headers: list[Any]) -> None:
        self.stream_id = stream_id
        self.headers = headers


class StreamReset:
    """The client reset the stream, or the engine did for a stream error of the client's."""

    __slots__ = ("stream_id", "error_code")

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code


class WindowUpdated:
    __slots__ = ("stream_id", "delta")

    def __init__(self, stream_id: int, delta: int) -> None:
        self.stream_id = stream_id
        self.delta = delta


class RemoteSettingsChanged:
    __slots__ = ()


class ConnectionTerminated:
    __slots__ = ("error_code", "last_stream_id", "additional_data")

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data


class StreamRefused:
    """A stream past SETTINGS_MAX_CONCURRENT_STREAMS, reset REFUSED_STREAM at once (RFC 9113
    section 5.1.2): both engines report it instead of the request."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
