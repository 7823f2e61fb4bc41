"""Header compression: gateway reuses HPACK blocks while the dynamic table stands still
(gateway/h2/hpack_cache.py). The plain hpack coders are the reference: whatever gateway encodes,
they decode to the same fields, and whatever they encode, gateway decodes as they do. On the
wire, a client with its own HPACK state sees every header as the app sent it."""

from __future__ import annotations

import random

import hpack
import pytest
from h2.settings import SettingCodes
from h2_client import h2_connection, respond
from support import http_app, read_body

from gateway.h2.hpack_cache import CachingDecoder, CachingEncoder

pytestmark = pytest.mark.timeout(60)


def header_lists(seed: int, count: int = 400) -> list[list[tuple[bytes, bytes]]]:
    """Lists that repeat often (so blocks are reused), change a value now and then (so the
    table moves) and sometimes carry a field too large to index."""
    rng = random.Random(seed)
    lists = []
    for _ in range(count):
        fields = [(b":status", rng.choice([b"200", b"200", b"404"])),
                  (b"content-type", b"text/plain"),
                  (b"date", rng.choice([b"Wed, 25 Nov 2026 14:00:00 GMT",
                                        b"Wed, 25 Nov 2026 14:00:01 GMT"]))]
        if rng.random() < 0.2:
            fields.append((b"x-request", str(rng.randrange(1000)).encode()))
        if rng.random() < 0.05:
            fields.append((b"x-large", b"v" * rng.randrange(3000, 5000)))
        lists.append(fields)
    return lists


@pytest.mark.parametrize("seed", range(5))
def test_encoder_blocks_decode_with_the_reference_decoder(seed):
    ours, reference = CachingEncoder(), hpack.Decoder()
    for number, fields in enumerate(header_lists(seed)):
        if number == 200:
            # The peer shrinks its table (SETTINGS_HEADER_TABLE_SIZE) mid-connection.
            ours.header_table_size = 256
            reference.max_allowed_table_size = 256
        assert reference.decode(ours.encode(fields), raw=True) == fields


@pytest.mark.parametrize("seed", range(5))
def test_decoder_agrees_with_the_reference_decoder(seed):
    encoder, ours, reference = hpack.Encoder(), CachingDecoder(), hpack.Decoder()
    for number, fields in enumerate(header_lists(seed)):
        if number == 200:
            encoder.header_table_size = 512
        block = encoder.encode(fields)
        assert list(ours.decode(block, raw=True)) == reference.decode(block, raw=True) == fields


def test_a_repeated_block_is_reused_until_the_table_changes():
    """The point of the cache: the second identical block is the same bytes, and a block after
    the table changed is encoded afresh against the new table."""
    encoder, decoder = CachingEncoder(), hpack.Decoder()
    fields = [(b":status", b"200"), (b"server", b"gateway")]
    first = encoder.encode(fields)
    second = encoder.encode(fields)
    assert encoder.encode(fields) is second
    other = encoder.encode([(b"x-new", b"1")])
    third = encoder.encode(fields)
    for block, expected in ((first, fields), (second, fields), (second, fields),
                            (other, [(b"x-new", b"1")]), (third, fields)):
        assert decoder.decode(block, raw=True) == expected
    assert third != second  # the entries moved one place down the table


def test_every_header_arrives_intact_over_one_connection(serve):
    """Forty requests on one connection with repeated, changing and new fields both ways, and
    the client's table shrunk half-way: the client's own HPACK state decodes each response to
    exactly what the app sent, and the app sees exactly what the client sent."""
    seen = []

    @http_app
    async def app(scope, receive, send):
        await read_body(receive)
        request = [(n, v) for n, v in scope["headers"] if n.startswith(b"x-")]
        seen.append(request)
        await respond(send, 200, b"ok", [(b"content-type", b"text/plain"), *request])

    rng = random.Random(7)
    sent = []
    with serve(app) as server, h2_connection(server.port) as client:
        for number in range(40):
            if number == 20:
                client.conn.update_settings({SettingCodes.HEADER_TABLE_SIZE: 128})
                client.flush()
            request = [(b"x-same", b"always"), (b"x-turn", str(number % 3).encode())]
            if rng.random() < 0.3:
                request.append((b"x-unique", str(number).encode() * 10))
            sent.append(request)
            result = client.response(client.request("/", headers=request))
            assert result.status == 200
            assert [(n, v) for n, v in result.headers if n.startswith(b"x-")] == request
        assert client.goaway is None
    assert seen == sent
