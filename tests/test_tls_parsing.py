"""Record layer and handshake parsing on real bytes: whole, byte by byte, split and merged."""

from __future__ import annotations

import pytest
from conftest import ZEEK_TRACES

from analyzer.capture.reader import CaptureReader
from analyzer.packets import SkimStats, skim
from analyzer.tls import messages as m
from analyzer.tls.observer import CLIENT, SERVER, TlsObserver
from analyzer.tls.records import HandshakeAssembler, Record, RecordLayer


def client_and_server_bytes(path: str) -> tuple[bytes, bytes]:
    """The first connection's payload bytes in each direction (tiny traces, in order)."""
    reader = CaptureReader(path)
    streams = [bytearray(), bytearray()]
    for blk in reader.blocks():
        cols = skim(blk, SkimStats())
        order = sorted(range(len(cols)), key=lambda i: int(cols.frame[i]))
        for i in order:
            if cols.plen[i]:
                off = int(cols.poff[i])
                streams[int(cols.dir[i])] += blk.data[off : off + int(cols.plen[i])].tobytes()
    first_is_client = streams[0][:1] == b"\x16" and streams[0][5:6] == b"\x01"
    c, s = (streams[0], streams[1]) if first_is_client else (streams[1], streams[0])
    return bytes(c), bytes(s)


TRACE = ZEEK_TRACES / "tls" / "tls1.2.pcap"
pytestmark = pytest.mark.skipif(not TRACE.exists(), reason="needs ../shared/conformance")


def records(data: bytes, chunk: int) -> list[Record]:
    layer = RecordLayer()
    out: list[Record] = []
    for i in range(0, len(data), chunk):
        out += layer.feed(data[i : i + chunk])
    assert layer.error is None
    return out


def test_records_whole_byte_by_byte_and_in_odd_chunks_agree() -> None:
    c, s = client_and_server_bytes(str(TRACE))
    for data in (c, s):
        whole = records(data, len(data))
        assert whole == records(data, 1) == records(data, 7) == records(data, 1460)
        assert sum(5 + r.length for r in whole) == len(data)


def test_handshake_messages_split_across_records() -> None:
    _, s = client_and_server_bytes(str(TRACE))
    recs = []
    for r in records(s, len(s)):
        if r.content_type == 20:
            break  # encrypted from here
        recs.append(r)
    body = b"".join(r.payload for r in recs)  # ServerHello .. ServerHelloDone
    whole = HandshakeAssembler().feed(body)
    asm = HandshakeAssembler()
    pieces = []
    for i in range(0, len(body), 3):  # re-fragment into 3-byte records
        pieces += asm.feed(body[i : i + 3])
    assert [(x.msg_type, x.body) for x in pieces] == [(x.msg_type, x.body) for x in whole]
    assert [x.msg_type for x in whole][:2] == [2, 11]


def test_client_hello_fields_and_trailing_data() -> None:
    c, _ = client_and_server_bytes(str(TRACE))
    msg = HandshakeAssembler().feed(records(c, len(c))[0].payload)[0]
    ch = m.parse_client_hello(msg.body)
    assert ch.legacy_version == 0x0303 and len(ch.random) == 32 and ch.cipher_suites
    cut = m.parse_client_hello(msg.body[:-1])  # cut inside the last extension: kept, and noted
    assert cut.problems and cut.cipher_suites == ch.cipher_suites
    assert cut.extension_types == ch.extension_types
    with pytest.raises(m.ParseError):
        m.parse_client_hello(msg.body[:40])  # cut inside the fixed part: nothing to salvage


def test_observer_fed_byte_by_byte_reaches_the_same_facts() -> None:
    c, s = client_and_server_bytes(str(TRACE))
    results = []
    for chunk in (1, 64, 100000):
        obs = TlsObserver([])
        # the real order of this conversation, flight by flight
        c_recs, s_recs = records(c, len(c)), records(s, len(s))
        ci = si = 0
        flights = [(CLIENT, 1), (SERVER, 1), (CLIENT, 3), (SERVER, 3), (CLIENT, 99), (SERVER, 99)]
        for side, n in flights:
            recs, i = (c_recs, ci) if side == CLIENT else (s_recs, si)
            data = b"".join(
                bytes([r.content_type, r.version >> 8, r.version & 255, r.length >> 8, r.length & 255]) + r.payload
                for r in recs[i : i + n]
            )
            for k in range(0, len(data), chunk):
                obs.data(side, data[k : k + chunk], 0, 0)
            if side == CLIENT:
                ci += n
            else:
                si += n
        results.append((obs.established, "".join(obs.history), obs.server_hello and obs.server_hello.cipher_suite))
    assert results[0] == results[1] == results[2]
    assert results[0][0] is True


def test_sslv2_client_hello() -> None:
    c, _ = client_and_server_bytes(str(ZEEK_TRACES / "tls" / "ssl-v2.pcap"))
    layer = RecordLayer()
    rec = layer.feed(c)[0]
    ch = m.parse_sslv2_client_hello(rec.payload)
    assert ch.sslv2 and ch.legacy_version == 0x0002 and 0x0700C0 in ch.cipher_suites


def test_non_tls_bytes_stop_the_record_layer() -> None:
    layer = RecordLayer()
    assert layer.feed(b"SSH-2.0-OpenSSH_9.2\r\n") == []
    assert layer.error is not None
