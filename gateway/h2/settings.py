"""The HTTP/2 engine a connection uses, set up from Config: gateway's own (engine.py) or h2's.

h2 is told everything here once: which checks it may skip (gateway makes them in one pass,
see fields.py), the SETTINGS gateway advertises, and the limits h2 keeps copies of; and its
stream limit refuses one stream rather than ending the connection.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, HeadersFrame

from ..config import Config
from .engine import FastConnection
from .events import StreamRefused
from .hpack_cache import CachingDecoder, CachingEncoder


def server_connection(config: Config) -> FastConnection | ServerConnection:
    if config.h2_engine == "fast":
        return FastConnection(config)
    return h2_connection(config)


def h2_connection(config: Config) -> ServerConnection:
    # h2's own field checks, a chain of generators per field, cost about a third of the time
    # a small request takes; fields.py makes the same checks in one pass.
    h2_config = h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=False,
        validate_outbound_headers=False, normalize_outbound_headers=False,
    )
    conn = ServerConnection(h2_config, config.h2_max_concurrent_streams)
    conn.encoder = CachingEncoder()
    conn.decoder = CachingDecoder()
    conn.local_settings = _AdvertisedSettings(
        client=False,
        initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.h2_initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: config.h2_max_frame_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
            # RFC 8441: WebSocket over extended CONNECT streams.
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        },
    )
    # h2 copies these limits when it is created and again only when settings change; settings
    # given from the start must be copied by hand.
    conn.max_inbound_frame_size = config.h2_max_frame_size
    conn.incoming_buffer.max_frame_size = config.h2_max_frame_size
    conn.decoder.max_header_list_size = config.h2_max_header_list_size
    return conn


class ServerConnection(h2.connection.H2Connection):
    """h2's server side, but a stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused alone.

    RFC 9113 section 5.1.2: such a stream is a stream error, REFUSED_STREAM telling the client
    it may retry. h2 ends the whole connection instead, and it parses every frame of a read
    before gateway sees the first request, so a burst of HEADERS in one read cannot be refused
    stream by stream from outside. Here each excess stream is opened (its header block decoded,
    which keeps the HPACK state in step, section 4.3) and reset at once; gateway gets a
    `StreamRefused` instead of the request."""

    def __init__(self, config: h2.config.H2Configuration, stream_limit: int) -> None:
        super().__init__(config=config)
        self.stream_limit = stream_limit

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[Frame], list[Any]]:
        # Half-closed streams count too (section 5.1.2): responses sent, bodies still arriving.
        # The exact count walks every stream, so it waits until the table (closed and pushed
        # streams included, so never smaller than the count) has reached the limit.
        streams = self.streams
        if frame.stream_id in streams or len(streams) < self.stream_limit \
                or self.open_inbound_streams < self.stream_limit:
            return super()._receive_headers_frame(frame)
        frames, _ = super()._receive_headers_frame(frame)
        self.reset_stream(frame.stream_id, ErrorCodes.REFUSED_STREAM)
        return frames, [StreamRefused(frame.stream_id)]

    def keep_serving_after_goaway(self) -> None:
        """RFC 9113 section 6.8: the streams already open still get their responses, but h2
        closes its state machine on any GOAWAY received; reopen it for them."""
        self.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN

    def take_output(self) -> list[bytes]:
        """What `data_to_send` gives, in the list form gateway's own engine returns."""
        data = self.data_to_send()
        return [data] if data else []


class _AdvertisedSettings(h2.settings.Settings):
    """The settings gateway sends. h2 reads `max_concurrent_streams` for one thing only, its
    own stream limit, which must let `ServerConnection` open the stream it refuses."""

    @property
    def max_concurrent_streams(self) -> int:
        return super().max_concurrent_streams + 1
