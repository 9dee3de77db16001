"""The compiled pcap walk and the pure-Python one give identical results (both paths are supported)."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from conftest import SAMPLES, ZEEK_TRACES

from analyzer.capture import reader

CAPTURES = [p for p in [*ZEEK_TRACES.glob("tls/*.pcap"), *SAMPLES.glob("*.pcap")] if p.stat().st_size > 24]


@pytest.mark.skipif(reader.walk_records is reader.walk_records_py, reason="compiled helper not built")
@pytest.mark.parametrize("path", CAPTURES[:40], ids=lambda p: p.name)
def test_c_and_python_walks_agree(path) -> None:
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        big = buf[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
        if buf[:4] not in reader.PCAP_MAGICS:
            pytest.skip("not a pcap")
        for count in (1, 7, 1 << 16):
            off = 24
            while True:
                a = reader.walk_records_py(buf, off, count, big, 65535)
                b = reader.walk_records_c(buf, off, count, big, 65535)
                for x, y in zip(a[:4], b[:4], strict=True):
                    assert np.array_equal(x, y)
                assert a[4] == b[4]
                if not len(a[0]):
                    break
                off = a[4]
            del a, b


def test_walk_stops_before_damage(tmp_path) -> None:
    data = bytearray(b"\xd4\xc3\xb2\xa1" + bytes(20))
    for i in range(3):
        data += (i).to_bytes(4, "little") + bytes(4) + (4).to_bytes(4, "little") * 2 + b"abcd"
    data += bytes(8) + (10**9).to_bytes(4, "little") + bytes(4)  # impossible length
    p = tmp_path / "d.pcap"
    p.write_bytes(bytes(data))
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        walks = [reader.walk_records_py(buf, 24, 100, False, 65535)]
        if reader.walk_records is reader.walk_records_c:
            walks.append(reader.walk_records_c(buf, 24, 100, False, 65535))
        for offs, sec, _frac, incl, nxt in walks:
            assert offs.tolist() == [24, 44, 64] and sec.tolist() == [0, 1, 2] and incl.tolist() == [4, 4, 4]
            assert nxt == 84
            del offs, sec, incl
