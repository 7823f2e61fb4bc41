"""An h2 server connection set up from Config.

h2 is told everything here once: which checks it may skip (gateway makes them in one pass,
see fields.py), the SETTINGS gateway advertises, and the limits h2 keeps copies of.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.settings

from ..config import Config
from .hpack_cache import CachingDecoder, CachingEncoder


def server_connection(config: Config) -> h2.connection.H2Connection:
    # h2's own field checks, a chain of generators per field, cost about a third of the time
    # a small request takes; fields.py makes the same checks in one pass.
    h2_config = h2.config.H2Configuration(
        client_side=False, header_encoding=None, validate_inbound_headers=False,
        validate_outbound_headers=False, normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=h2_config)
    conn.encoder = CachingEncoder()
    conn.decoder = CachingDecoder()
    conn.local_settings = h2.settings.Settings(
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


def refuse_excess_streams_alone(conn: h2.connection.H2Connection, config: Config) -> None:
    """RFC 9113 section 5.1.2: a stream over the advertised limit is refused alone (the
    protocol answers REFUSED_STREAM). h2 would end the whole connection instead, so, once the
    initial SETTINGS are out, its own limit is raised without telling the client."""
    conn.local_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = (
        2 * config.h2_max_concurrent_streams
    )
