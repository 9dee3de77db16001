"""Key logs and record decryption: RFC 8448 vectors, OpenSSL fixtures per suite, real samples against tshark."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import pathlib
import random
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from conftest import ROOT, SAMPLES
from cryptography import x509

from analyzer.capture.reader import CaptureReader
from analyzer.packets import SkimStats, skim
from analyzer.tcp.reassembly import Gap, Reassembler
from analyzer.tls import messages as m
from analyzer.tls.keylog import (
    DSB_TLS_KEY_LOG,
    TLS13_SUITES,
    Decryptor,
    DecryptStatus,
    KeyLog,
    hkdf_expand_label,
    keylog_from_dsb,
    merge,
    parse_keylog,
    read_keylog,
    tls12_suite,
    tls13_traffic_keys,
    tls_prf,
)
from analyzer.tls.records import HandshakeAssembler, Record, RecordLayer

DATA = ROOT / "tests" / "data" / "keylog"
CLIENT, SERVER = 0, 1


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --------------------------------------------------------------------------- RFC 8448 section 3 values

CR = h("cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7")  # ClientHello.random
SR = h("a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928")  # ServerHello.random
EARLY = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
EMPTY_HASH = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
DERIVED_EARLY = h("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")
HS_SECRET = h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
HS_HASH = h("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
C_HS = h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
S_HS = h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
MASTER = h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
AP_HASH = h("9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13")
C_AP = h("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
S_AP = h("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
S_HS_KEY, S_HS_IV = h("3fce516009c21727d0f2e4e86ee403bc"), h("5d313eb2671276ee13000b30")
C_HS_KEY, C_HS_IV = h("dbfaa693d1762c5b666af5d950258d01"), h("5bd3c71b836e0b76bb73265f")
S_AP_KEY, S_AP_IV = h("9f02283b6c9c07efc26bb9f2ac92e356"), h("cf782b88dd83549aadf1e984")
C_AP_KEY, C_AP_IV = h("17422dda596ed5d9acd890e3c63f5051"), h("5b78923dee08579033e523d9")
S_FINISHED_KEY = h("008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")

SERVER_FLIGHT = h("""
17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f 45 e4 89 e7 f3 3a f3 5e df
78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca 07 61 2e f9 f9 45 cb 96 0b 40 68 90 51 23 ea 78 b1 11
b4 29 ba 91 91 cd 05 d2 a3 89 28 0f 52 61 34 aa dc 7f c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b d9 ae fb
0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79 02 07 16 cf b9 b1 18 3e f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09
ae e6 e1 22 a4 cf 51 42 73 25 25 0c 7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e d6 5b 0e 3c dd
0c ba e8 bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92 8d 80 98 10 e4 b7
ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70 a2 55 9c 09 ea d6 86 94 5b a2 46 ab 66 e5 ed
d8 04 4b 4c 6d e3 fc f2 a8 94 41 ac 66 27 2f d8 fb 33 0e f8 19 05 79 b3 68 45 96 c9 60 bd 59 6e ea
52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63 d3 e6 88 61 1e a5 e2 2f 44 15 cf 95 38 d5 1a 20 0c
27 03 42 72 96 8a 26 4e d6 54 0c 84 83 8d 89 f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb 31 7b 66
d9 02 f4 f2 92 a3 6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31 7b 49 ee da 0c 62 58 f1 00 d7 d9
61 ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e 1b 7a 6c 71 78 af 36 87 90 18 e3 f2
52 10 7f 24 3d 24 3d c7 33 9d 56 84 c8 b0 37 8b f3 02 44 da 8c 87 c8 43 f5 e5 6e b4 c5 e8 28 0a 2b
48 05 2c f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4 61 e6 6f 99 88 2b d8 9f c5 08 00 be cc a6
2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d f8 81 ed be 5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69
18 a3 96 fa 48 a1 81 d6 b6 fa 4f 9d 62 d5 13 af bb 99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb
56 30 c8 ca 01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10 dc 35 ae 69 f5 51 56 14 63
6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38 eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2 3f aa 63 97 8c 31
7f c9 fa 66 a7 3f 60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee 34 0b bc 4f dd d5 02 78 40 16 e4
b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af 93 98 28 fd 4a e3 79 4e 44 f9 4d f5 a6 31 ed e4 2c 17
19 bf da bf 02 53 fe 51 75 be 89 8e 75 0e dc 53 37 0d 2b""")
CLIENT_FINISHED = h("""
17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc 44
d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46""")
SERVER_TICKET = h("""
17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24 0e 6c ff ac 11 6e 95 d4 1d
6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55 71 3e 06 1d c1 3e 07 88 91 a3 8e fb
cf 57 53 ad 8e f1 70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0 9c 30 ba
1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15 13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1
81 a7 7c a4 75 84 00 25 db 2f 0a 77 f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac
87 aa c3 47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68 7e 24
87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b 3b 6c 67 79 b3 7b f1 59 85 68 4f""")
CLIENT_APP = h("""
17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b
98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee
bb 21 69 49 15 e4""")
SERVER_APP = h("""
17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36 e3
0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0
32 e1 67 c2 95 5d""")
CLIENT_ALERT = h("17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3")
SERVER_ALERT = h("17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9")


def rec(wire: bytes) -> Record:
    return Record(wire[0], int.from_bytes(wire[1:3], "big"), wire[5:])


def rfc_keylog(*, app: bool = True, s_hs: bytes = S_HS) -> KeyLog:
    lines = [
        "# RFC 8448 section 3",
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR.hex()} {C_HS.hex()}",
        f"SERVER_HANDSHAKE_TRAFFIC_SECRET {CR.hex()} {s_hs.hex()}",
    ]
    if app:
        lines += [
            f"CLIENT_TRAFFIC_SECRET_0 {CR.hex()} {C_AP.hex()}",
            f"SERVER_TRAFFIC_SECRET_0 {CR.hex()} {S_AP.hex()}",
        ]
    return parse_keylog("\n".join(lines) + "\n")


def msg_types(payload: bytes) -> list[int]:
    return [x.msg_type for x in HandshakeAssembler().feed(payload)]


def status(dec: Decryptor) -> DecryptStatus:
    """dec.status, read through a call (mypy would otherwise keep an earlier assert's narrowing)."""
    return dec.status


def rfc_decryptor(log: KeyLog) -> Decryptor:
    dec = Decryptor.for_connection(log, CR, SR, 0x1301, 0x0304)
    assert isinstance(dec, Decryptor)
    return dec


def test_hkdf_expand_label_and_derive_secret_rfc8448() -> None:
    # Derive-Secret(Secret, Label, Messages) = HKDF-Expand-Label(Secret, Label, Transcript-Hash(Messages), 32)
    assert hkdf_expand_label(EARLY, "derived", EMPTY_HASH, 32) == DERIVED_EARLY
    assert hkdf_expand_label(HS_SECRET, "c hs traffic", HS_HASH, 32) == C_HS
    assert hkdf_expand_label(HS_SECRET, b"s hs traffic", HS_HASH, 32) == S_HS
    assert hkdf_expand_label(MASTER, "c ap traffic", AP_HASH, 32) == C_AP
    assert hkdf_expand_label(MASTER, "s ap traffic", AP_HASH, 32) == S_AP
    assert hkdf_expand_label(S_HS, "finished", b"", 32) == S_FINISHED_KEY


def test_traffic_keys_rfc8448() -> None:
    assert tls13_traffic_keys(S_HS, 0x1301) == (S_HS_KEY, S_HS_IV)
    assert tls13_traffic_keys(C_HS, 0x1301) == (C_HS_KEY, C_HS_IV)
    assert tls13_traffic_keys(S_AP, 0x1301) == (S_AP_KEY, S_AP_IV)
    assert tls13_traffic_keys(C_AP, 0x1301) == (C_AP_KEY, C_AP_IV)
    with pytest.raises(ValueError):
        tls13_traffic_keys(S_HS, 0xC02F)


def test_rfc8448_whole_connection() -> None:
    dec = rfc_decryptor(rfc_keylog())
    assert status(dec) == DecryptStatus.PENDING
    assert dec.keys(SERVER) == (S_HS_KEY, S_HS_IV) and dec.keys(CLIENT) == (C_HS_KEY, C_HS_IV)
    # the ServerHello and a compatibility ChangeCipherSpec are not protected: returned as they are
    ccs = Record(20, 0x0303, b"\x01")
    assert dec.decrypt(SERVER, ccs) is ccs

    flight = dec.decrypt(SERVER, rec(SERVER_FLIGHT))
    assert flight is not None and flight.content_type == 22 and len(flight.payload) == 657
    msgs = HandshakeAssembler().feed(flight.payload)
    # EncryptedExtensions, Certificate, CertificateVerify, Finished
    assert [x.msg_type for x in msgs] == [8, 11, 15, 20]
    cert = m.parse_certificate(msgs[1].body, tls13=True)
    leaf = x509.load_der_x509_certificate(cert.chain[0])
    assert leaf.subject.rfc4514_string() == "CN=rsa"
    assert status(dec) == DecryptStatus.DECRYPTED
    # the server's Finished ended that record: application keys from the next one on
    assert dec.phase(SERVER) == "application" and dec.keys(SERVER) == (S_AP_KEY, S_AP_IV)
    assert dec.phase(CLIENT) == "handshake"

    ticket = dec.decrypt(SERVER, rec(SERVER_TICKET))
    assert ticket is not None and ticket.content_type == 22 and msg_types(ticket.payload) == [4]

    fin = dec.decrypt(CLIENT, rec(CLIENT_FINISHED))
    assert fin is not None and fin.content_type == 22 and msg_types(fin.payload) == [20]
    assert dec.phase(CLIENT) == "application" and dec.keys(CLIENT) == (C_AP_KEY, C_AP_IV)

    assert dec.decrypt(CLIENT, rec(CLIENT_APP)) == Record(23, 0x0303, bytes(range(50)))
    assert dec.decrypt(SERVER, rec(SERVER_APP)) == Record(23, 0x0303, bytes(range(50)))  # sequence number 1
    assert dec.decrypt(CLIENT, rec(CLIENT_ALERT)) == Record(21, 0x0303, b"\x01\x00")  # close_notify
    assert dec.decrypt(SERVER, rec(SERVER_ALERT)) == Record(21, 0x0303, b"\x01\x00")
    assert dec.decrypted_records == 7 and dec.failed_records == 0


def test_rfc8448_tampered_record_fails_and_does_not_advance() -> None:
    dec = rfc_decryptor(rfc_keylog())
    bad = bytearray(SERVER_FLIGHT)
    bad[100] ^= 1
    assert dec.decrypt(SERVER, rec(bytes(bad))) is None
    assert dec.last_status == DecryptStatus.KEY_MISMATCH and status(dec) == DecryptStatus.KEY_MISMATCH
    assert dec.decrypt(SERVER, rec(SERVER_FLIGHT)) is not None  # sequence number 0 still
    assert status(dec) == DecryptStatus.DECRYPTED  # sticky once a record authenticated
    assert dec.decrypt(SERVER, rec(SERVER_FLIGHT)) is None  # replayed at sequence 1 (and under the app key)
    assert status(dec) == DecryptStatus.DECRYPTED and dec.last_status == DecryptStatus.KEY_MISMATCH


def test_rfc8448_wrong_secret_is_key_mismatch() -> None:
    wrong = bytearray(S_HS)
    wrong[0] ^= 0x80
    dec = rfc_decryptor(rfc_keylog(s_hs=bytes(wrong)))
    assert dec.decrypt(SERVER, rec(SERVER_FLIGHT)) is None
    assert status(dec) == DecryptStatus.KEY_MISMATCH
    # the client's keys are right: its Finished still decrypts
    assert dec.decrypt(CLIENT, rec(CLIENT_FINISHED)) is not None
    assert status(dec) == DecryptStatus.DECRYPTED


def test_rfc8448_missing_application_secrets_is_no_key_not_mismatch() -> None:
    dec = rfc_decryptor(rfc_keylog(app=False))
    assert dec.decrypt(SERVER, rec(SERVER_FLIGHT)) is not None
    assert dec.decrypt(SERVER, rec(SERVER_TICKET)) is None
    assert dec.last_status == DecryptStatus.NO_KEY
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0


def test_for_connection_statuses() -> None:
    log = rfc_keylog()
    assert Decryptor.for_connection(log, bytes(32), SR, 0x1301, 0x0304) == DecryptStatus.NO_KEY
    assert Decryptor.for_connection(log, CR[:31], SR, 0x1301, 0x0304) == DecryptStatus.NO_KEY
    assert Decryptor.for_connection(log, CR, SR, 0xC02F, 0x0303) == DecryptStatus.NO_KEY  # no CLIENT_RANDOM line
    assert Decryptor.for_connection(log, CR, SR, 0x1306, 0x0304) == DecryptStatus.UNSUPPORTED_SUITE
    assert Decryptor.for_connection(log, CR, SR, 0x1301, 0x7F1C) == DecryptStatus.UNSUPPORTED_SUITE  # draft
    # SHA-384 suite with 32-byte secrets: cannot be the right key
    assert Decryptor.for_connection(log, CR, SR, 0x1302, 0x0304) == DecryptStatus.KEY_MISMATCH
    tls12 = parse_keylog(f"CLIENT_RANDOM {CR.hex()} {'11' * 48}\n")
    assert isinstance(Decryptor.for_connection(tls12, CR, SR, 0xC02F, 0x0303), Decryptor)
    assert Decryptor.for_connection(tls12, CR, SR, 0x000A, 0x0303) == DecryptStatus.UNSUPPORTED_SUITE  # 3DES
    assert Decryptor.for_connection(tls12, CR, SR, 0xC02F, 0x0302) == DecryptStatus.UNSUPPORTED_SUITE  # GCM in 1.1
    assert Decryptor.for_connection(tls12, CR, SR, 0x002F, 0x0300) == DecryptStatus.UNSUPPORTED_SUITE  # SSL 3.0
    assert Decryptor.for_connection(tls12, CR, SR[:5], 0xC02F, 0x0303) == DecryptStatus.NO_KEY


def test_suite_tables() -> None:
    assert set(TLS13_SUITES) == {0x1301, 0x1302, 0x1303, 0x1304, 0x1305}
    s = tls12_suite(0xC030)  # TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
    assert s is not None and (s.cipher, s.key_len, s.prf_hash) == ("gcm", 32, "sha384")
    s = tls12_suite(0xC014)  # TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
    assert s is not None and (s.cipher, s.key_len, s.mac, s.prf_hash) == ("cbc", 32, "sha1", "sha256")
    s = tls12_suite(0xC024)  # TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
    assert s is not None and (s.mac, s.prf_hash) == ("sha384", "sha384")
    s = tls12_suite(0xCCA8)
    assert s is not None and (s.cipher, s.iv_len) == ("chacha", 12)
    s = tls12_suite(0xC0AF)  # TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8
    assert s is not None and (s.cipher, s.key_len) == ("ccm8", 32)
    for code in (0x0005, 0x000A, 0x0041, 0xC072, 0xCC13, 0x1301, 0xFFFF):  # RC4, 3DES, Camellia, draft ChaCha, 1.3
        assert tls12_suite(code) is None


def test_tls_prf_known_answers() -> None:
    # TLS 1.2 P_SHA256 / P_SHA384 vectors from the IETF TLS list (msg03416), TLS 1.0 MD5+SHA1 vector
    # from the ietf-tls archive (msg01589); both as carried in BearSSL's test_crypto.c
    out = tls_prf(
        h("9bbe436ba940f017b17652849a71db35"), b"test label", h("a0ba9f936cda311827a6f796ffd5198c"), 100, 0x0303
    )
    assert out == h(
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af"
        "0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    )
    out = tls_prf(
        h("b80b733d6ceefcdc71566ea48e5567df"),
        b"test label",
        h("cd665cf6a8447dd6ff8b27555edb7465"),
        148,
        0x0303,
        "sha384",
    )
    assert out == h(
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b1233c9146a0"
        "e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee691c8f3a26854308d5eaa3be85e099070"
        "3d73e56f"
    )
    out = tls_prf(b"\xab" * 48, b"PRF Testvector", b"\xcd" * 64, 104, 0x0301)
    assert out == h(
        "d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754443bcf9a296519bc289abcbc1187e4eb"
        "d31e602353776c408aafb74cbc85eff69255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f"
        "1afbc655a8c9a013"
    )


# --------------------------------------------------------------------------- key log parsing


def test_parse_keylog_lines() -> None:
    cr2 = bytes(range(32))
    text = (
        "# SSL/TLS secrets log file\r\n"
        "\n"
        f"CLIENT_RANDOM {CR.hex()} {'ab' * 48}\r\n"
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr2.hex().upper()} {'01' * 32}\n"
        f"EXPORTER_SECRET {cr2.hex()} {'02' * 32}\n"
        f"CLIENT_EARLY_TRAFFIC_SECRET {cr2.hex()} {'03' * 48}\n"
        f"RSA 0011223344556677 {'04' * 48}\n"
        f"CLIENT_RANDOM {CR.hex()} {'ab' * 47}\n"  # master secret too short: junk
        f"CLIENT_RANDOM {CR.hex()[:-2]} {'ab' * 48}\n"  # random too short: junk
        "CLIENT_RANDOM zz\n"  # wrong field count
        f"client_random {CR.hex()} {'ab' * 48}\n"  # label not upper case
        f"CLIENT_RANDOM {CR.hex()} {'ag' * 48}\n"  # not hex
        f"CLIENT_RANDOM {CR.hex()} {'cd' * 48}\n"  # contradicts the first: first kept
        f"CLIENT_RANDOM {CR.hex()} {'ab' * 48}\n"  # repeats it: fine
        "   # indented comment\n"
    )
    log = parse_keylog(text)
    assert log.skipped_lines == 6
    assert log.secret(CR, "CLIENT_RANDOM") == b"\xab" * 48
    assert dict(log.entries[cr2]) == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": b"\x01" * 32,
        "EXPORTER_SECRET": b"\x02" * 32,
        "CLIENT_EARLY_TRAFFIC_SECRET": b"\x03" * 48,
    }
    assert dict(log.rsa_premaster) == {h("0011223344556677"): b"\x04" * 48}
    assert parse_keylog(text.encode()) == log
    assert len(log) == 2 and log.secret(bytes(32), "CLIENT_RANDOM") is None


def test_parse_keylog_never_raises_on_junk() -> None:
    rng = random.Random(8448)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        log = parse_keylog(blob)
        assert not log.entries
    assert parse_keylog(b"\xff\xfe\x00garbage\nCLIENT_RANDOM\n").skipped_lines == 2
    assert parse_keylog("").entries == {}


def test_merge_first_wins() -> None:
    a = parse_keylog(f"CLIENT_RANDOM {CR.hex()} {'01' * 48}\njunk\n")
    b = parse_keylog(f"CLIENT_RANDOM {CR.hex()} {'02' * 48}\nCLIENT_RANDOM {SR.hex()} {'03' * 48}\n")
    both = merge(a, b)
    assert both.secret(CR, "CLIENT_RANDOM") == b"\x01" * 48
    assert both.secret(SR, "CLIENT_RANDOM") == b"\x03" * 48
    assert both.skipped_lines == 2  # the junk line, and b's contradicting CLIENT_RANDOM
    assert merge().entries == {}


def test_keylog_from_dsb_type() -> None:
    text = f"CLIENT_RANDOM {CR.hex()} {'01' * 48}\n".encode()
    assert keylog_from_dsb(0x5353484B, text) is None  # 'SSHK'
    log = keylog_from_dsb(DSB_TLS_KEY_LOG, text + b"\0\0\0")
    assert log is not None and log.secret(CR, "CLIENT_RANDOM") == b"\x01" * 48 and log.skipped_lines == 0


# --------------------------------------------------------------------------- connections from bytes


@dataclass
class Conn:
    client_port: int
    server_port: int
    sequence: list[tuple[int, Record]]  # (side, record) in the order they were seen
    complete: bool  # no gap in either direction

    @property
    def records(self) -> tuple[list[Record], list[Record]]:
        return [r for s, r in self.sequence if s == CLIENT], [r for s, r in self.sequence if s == SERVER]


def sequence_of(chunks: list[tuple[int, bytes]]) -> list[tuple[int, Record]]:
    """(side, chunk) in order -> (side, record) in order (a side stops at bytes that are not TLS)."""
    layers = (RecordLayer(), RecordLayer())
    return [(side, r) for side, chunk in chunks for r in layers[side].feed(chunk)]


@functools.cache
def connections(path: pathlib.Path) -> list[Conn]:
    """Every TCP connection of a capture: both directions reassembled, records in capture order."""
    reader = CaptureReader(path)
    segs: dict[tuple[int, ...], list[tuple[int, int, int, int, bytes]]] = {}
    for blk in reader.blocks():
        cols = skim(blk, SkimStats())
        starts = cols.starts.tolist()
        for g, key in enumerate(cols.keys):
            for i in range(starts[g], starts[g + 1]):
                off, n = int(cols.poff[i]), int(cols.plen[i])
                segs.setdefault(key, []).append(
                    (
                        int(cols.frame[i]),
                        int(cols.dir[i]),
                        int(cols.flags[i]),
                        int(cols.seq[i]),
                        blk.data[off : off + n].tobytes(),
                    )
                )
    out: list[tuple[int, Conn]] = []
    for key, items in segs.items():
        ports = (key[(len(key) - 1) // 2], key[-1])
        # split at a SYN (without ACK) that starts a new connection on the same 4-tuple
        groups: list[list[tuple[int, int, int, int, bytes]]] = []
        syn_seq: int | None = None
        for item in sorted(items):
            _, _, flags, seq, _ = item
            if (flags & 0x12 == 0x02 and seq != syn_seq) or not groups:
                syn_seq = seq if flags & 0x12 == 0x02 else syn_seq
                groups.append([])
            groups[-1].append(item)
        for group in groups:
            syn = next((x for x in group if x[2] & 0x12 == 0x02), None)
            first = next((x for x in group if x[4]), None)
            if first is None:
                continue
            if syn is not None:
                cdir = syn[1]
            else:
                cdir = first[1] if first[4][:1] == b"\x16" and first[4][5:6] == b"\x01" else 1 - first[1]
            isn: list[int | None] = [None, None]
            for _, d, flags, seq, _ in group:
                if flags & 0x02 and isn[d] is None:
                    isn[d] = seq
            reasm = (Reassembler(isn[0]), Reassembler(isn[1]))
            chunks: list[tuple[int, bytes]] = []
            complete = True
            for _, d, _, seq, payload in group:
                for piece in reasm[d].add(seq, payload) if payload else []:
                    if isinstance(piece, Gap):
                        complete = False
                    else:
                        chunks.append((CLIENT if d == cdir else SERVER, piece))
            conn = Conn(ports[cdir], ports[1 - cdir], sequence_of(chunks) if complete else [], complete)
            out.append((group[0][0], conn))
    out.sort(key=lambda x: x[0])
    return [c for _, c in out]


@dataclass
class Hello:
    client_random: bytes
    server_random: bytes
    suite: int
    version: int
    hrr: bool


def hellos(conn: Conn) -> Hello | None:
    """The ClientHello and (the last, after a HelloRetryRequest) ServerHello, from the records in clear."""
    ch: m.ClientHello | None = None
    sh: m.ServerHello | None = None
    hrr = False
    asm = HandshakeAssembler()
    for r in conn.records[CLIENT]:
        if r.content_type == 22 and ch is None:
            ch = next((m.parse_client_hello(x.body) for x in asm.feed(r.payload) if x.msg_type == 1), None)
    asm = HandshakeAssembler()
    for r in conn.records[SERVER]:
        if sh is not None and (r.content_type == 20 or sh.selected_version == 0x0304):
            break  # encrypted from here
        if r.content_type != 22:
            continue
        for msg in asm.feed(r.payload):
            if msg.msg_type == 2:
                hello = m.parse_server_hello(msg.body)
                hrr = hrr or hello.is_hrr
                sh = None if hello.is_hrr else hello
    if ch is None or sh is None:
        return None
    return Hello(ch.random, sh.random, sh.cipher_suite, sh.selected_version, hrr)


@dataclass
class Plain:
    records: tuple[list[Record | None], list[Record | None]]
    messages: tuple[list[m.HandshakeMessage], list[m.HandshakeMessage]]  # decrypted handshake messages

    def types(self, side: int) -> list[int]:
        return [x.msg_type for x in self.messages[side]]

    def alerts(self, side: int) -> list[tuple[int, int]]:
        return [(r.payload[0], r.payload[1]) for r in self.records[side] if r is not None and r.content_type == 21]

    def app_data(self, side: int) -> bytes:
        return b"".join(r.payload for r in self.records[side] if r is not None and r.content_type == 23)


def run(dec: Decryptor, conn: Conn) -> Plain:
    """Decrypt the records in order, as the observer will (telling the decryptor about CCS in TLS 1.2)."""
    recs: tuple[list[Record | None], list[Record | None]] = ([], [])
    msgs: tuple[list[m.HandshakeMessage], list[m.HandshakeMessage]] = ([], [])
    asm = (HandshakeAssembler(), HandshakeAssembler())
    protected = [False, False]
    for side, r in conn.sequence:
        out = dec.decrypt(side, r)
        if not dec.tls13 and r.content_type == 20:
            dec.change_cipher_spec(side)
            protected[side] = True
            continue
        if dec.tls13:
            protected[side] = r.content_type == 23
        if not protected[side]:
            continue
        recs[side].append(out)
        if out is not None and out.content_type == 22:
            msgs[side].extend(asm[side].feed(out.payload))
    return Plain(recs, msgs)


def decryptor(log: KeyLog, hello: Hello) -> Decryptor:
    dec = Decryptor.for_connection(log, hello.client_random, hello.server_random, hello.suite, hello.version)
    assert isinstance(dec, Decryptor), dec
    return dec


# --------------------------------------------------------------------------- OpenSSL fixtures, one per suite

FIXTURES = sorted(p.stem for p in DATA.glob("*.json"))


@functools.cache
def fixture(name: str) -> tuple[dict[str, object], KeyLog, Conn]:
    raw = json.loads((DATA / f"{name}.json").read_text())
    chunks = [(int(d), bytes.fromhex(x)) for d, x in raw["chunks"]]
    return raw, parse_keylog(raw["keylog"]), Conn(0, 0, sequence_of(chunks), True)


EXPECTED_SUITE = {
    "tls13-aes128gcm-keyupdate": (0x0304, 0x1301),
    "tls13-chacha20": (0x0304, 0x1303),
    "tls13-aes128ccm": (0x0304, 0x1304),
    "tls13-aes128ccm8": (0x0304, 0x1305),
    "tls12-chacha20": (0x0303, 0xCCA9),
    "tls12-aes128ccm": (0x0303, 0xC0AC),
    "tls12-aes256ccm8": (0x0303, 0xC0AF),
    "tls12-cbc-sha1-etm": (0x0303, 0xC009),
    "tls12-cbc-sha1-mte": (0x0303, 0xC009),
    "tls12-cbc-sha256-mte": (0x0303, 0xC023),
    "tls12-cbc-sha384-etm": (0x0303, 0xC024),
    "tls12-cbc-sha384-mte": (0x0303, 0xC024),
    "tls11-cbc-mte": (0x0302, 0xC00A),
    "tls10-cbc-mte": (0x0301, 0xC009),
    "tls12-renegotiation": (0x0303, 0xC02B),
    "tls13-early-data": (0x0304, 0x1302),
}


def test_every_fixture_is_checked() -> None:
    assert set(FIXTURES) == set(EXPECTED_SUITE)


@pytest.mark.parametrize("name", [n for n in FIXTURES if n not in ("tls12-renegotiation", "tls13-early-data")])
def test_openssl_fixture_decrypts(name: str) -> None:
    raw, log, conn = fixture(name)
    hello = hellos(conn)
    assert hello is not None
    assert (hello.version, hello.suite) == EXPECTED_SUITE[name]
    dec = decryptor(log, hello)
    plain = run(dec, conn)
    assert all(r is not None for side in plain.records for r in side), dec.last_error
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0
    if hello.version == 0x0304:
        assert plain.types(SERVER)[:4] == [8, 11, 15, 20]
        assert plain.types(CLIENT)[0] == 20
        assert dec.phase(CLIENT) == dec.phase(SERVER) == "application"
    else:
        assert plain.types(CLIENT)[0] == plain.types(SERVER)[0] == 20  # Finished first after ChangeCipherSpec
        assert len(plain.messages[CLIENT][0].body) == 12
    assert raw["client_lines"] in (["hello\n", "world\n"], ["hello\n", "K\n", "world\n"])  # K: KeyUpdate command
    assert plain.app_data(CLIENT) == b"hello\nworld\n"
    assert plain.app_data(SERVER).endswith(b"olleh\ndlrow\n")  # s_server -rev
    assert plain.alerts(CLIENT)[-1:] == [(1, 0)]  # close_notify


def test_tls13_key_update_both_sides() -> None:
    _, log, conn = fixture("tls13-aes128gcm-keyupdate")
    hello = hellos(conn)
    assert hello is not None
    dec = decryptor(log, hello)
    first_keys = None
    for r in conn.records[CLIENT]:
        dec.decrypt(CLIENT, r)
        if dec.phase(CLIENT) == "application" and first_keys is None:
            first_keys = dec.keys(CLIENT)
    plain = run(decryptor(log, hello), conn)
    assert 24 in plain.types(CLIENT) and 24 in plain.types(SERVER)  # the client's KeyUpdate and the server's answer
    assert first_keys is not None and dec.keys(CLIENT) != first_keys
    assert plain.app_data(CLIENT) == b"hello\nworld\n"  # "world" was sent under the updated key


def test_tls13_early_data() -> None:
    _, log, conn = fixture("tls13-early-data")
    hello = hellos(conn)
    assert hello is not None and (hello.version, hello.suite) == EXPECTED_SUITE["tls13-early-data"]
    dec = decryptor(log, hello)
    assert dec.phase(CLIENT) == "early"  # CLIENT_EARLY_TRAFFIC_SECRET is logged for this random
    plain = run(dec, conn)
    assert plain.types(CLIENT) == [5, 20]  # EndOfEarlyData (under the early keys), Finished
    assert plain.types(SERVER)[:2] == [8, 20]  # PSK resumption: EncryptedExtensions, Finished
    assert plain.app_data(CLIENT) == b"early\nhello\nworld\n"  # 0-RTT data first
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0
    # without the early secret the two 0-RTT records fail, do not consume a sequence number,
    # and the handshake keys still open the client's Finished
    no_early = parse_keylog(
        "\n".join(
            f"{label} {hello.client_random.hex()} {secret.hex()}"
            for label, secret in log.entries[hello.client_random].items()
            if label != "CLIENT_EARLY_TRAFFIC_SECRET"
        )
    )
    dec = decryptor(no_early, hello)
    assert dec.phase(CLIENT) == "handshake"
    plain = run(dec, conn)
    assert plain.records[CLIENT][:2] == [None, None]
    assert plain.types(CLIENT) == [20] and plain.app_data(CLIENT) == b"hello\nworld\n"
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 2


def test_tls12_cbc_encrypt_then_mac_is_detected() -> None:
    for name, etm in (("tls12-cbc-sha1-etm", True), ("tls12-cbc-sha1-mte", False), ("tls12-cbc-sha384-etm", True)):
        _, log, conn = fixture(name)
        hello = hellos(conn)
        assert hello is not None
        # told the wrong mode, nothing authenticates
        told_wrong = Decryptor.for_connection(
            log, hello.client_random, hello.server_random, hello.suite, hello.version, encrypt_then_mac=not etm
        )
        assert isinstance(told_wrong, Decryptor)
        run(told_wrong, conn)
        assert status(told_wrong) == DecryptStatus.KEY_MISMATCH
        told_right = Decryptor.for_connection(
            log, hello.client_random, hello.server_random, hello.suite, hello.version, encrypt_then_mac=etm
        )
        assert isinstance(told_right, Decryptor)
        run(told_right, conn)
        assert status(told_right) == DecryptStatus.DECRYPTED and told_right.failed_records == 0


def test_tls12_renegotiation_is_followed() -> None:
    _, log, conn = fixture("tls12-renegotiation")
    hello = hellos(conn)
    assert hello is not None
    dec = decryptor(log, hello)
    plain = run(dec, conn)
    # the renegotiation handshake travels encrypted under the first keys, its Finished under the new ones
    assert plain.types(CLIENT) == [20, 1, 16, 20]  # Finished, ClientHello, ClientKeyExchange, Finished
    assert plain.types(SERVER) == [20, 2, 11, 12, 14, 4, 20]
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0
    assert plain.app_data(CLIENT) == b"hello\nworld\n" and plain.app_data(SERVER) == b"olleh\ndlrow\n"
    assert plain.alerts(CLIENT) == [(1, 0)]
    # without the second handshake's master secret: NO_KEY after the renegotiation, not a mismatch
    master = log.secret(hello.client_random, "CLIENT_RANDOM")
    assert master is not None
    first = parse_keylog(f"CLIENT_RANDOM {hello.client_random.hex()} {master.hex()}")
    dec = decryptor(first, hello)
    plain = run(dec, conn)
    assert plain.app_data(CLIENT) == b"hello\n"
    assert dec.last_status == DecryptStatus.NO_KEY and dec.phase(CLIENT) == "no keys (renegotiated)"
    assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0


def test_fixture_wrong_master_secret_and_unknown_random() -> None:
    for name in ("tls12-cbc-sha256-mte", "tls12-chacha20", "tls10-cbc-mte", "tls13-chacha20"):
        _, log, conn = fixture(name)
        hello = hellos(conn)
        assert hello is not None
        changed = parse_keylog(
            "\n".join(
                f"{label} {rnd.hex()} {bytes([secret[0] ^ 1]).hex()}{secret[1:].hex()}"
                for rnd, by_label in log.entries.items()
                for label, secret in by_label.items()
            )
        )
        dec = decryptor(changed, hello)
        run(dec, conn)
        assert status(dec) == DecryptStatus.KEY_MISMATCH and dec.decrypted_records == 0, name
        other = bytes(32 - len(b"x")) + b"x"
        assert (
            Decryptor.for_connection(log, other, hello.server_random, hello.suite, hello.version)
            == DecryptStatus.NO_KEY
        )


def test_decrypt_never_raises_on_hostile_records() -> None:
    rng = random.Random(7)
    for name in FIXTURES:
        _, log, conn = fixture(name)
        hello = hellos(conn)
        assert hello is not None
        dec = decryptor(log, hello)
        for side in (CLIENT, SERVER):
            dec.change_cipher_spec(side)
            for _ in range(60):
                n = rng.choice([0, 1, 7, 8, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 64, 80, 300])
                payload = bytes(rng.randrange(256) for _ in range(n))
                ct = 23 if dec.tls13 else rng.choice([21, 22, 23])
                assert dec.decrypt(side, Record(ct, 0x0303, payload)) is None
        assert status(dec) == DecryptStatus.KEY_MISMATCH
    with pytest.raises(ValueError):
        dec.decrypt(2, Record(23, 0x0303, b""))


# --------------------------------------------------------------------------- real captures


def sample(name: str) -> pathlib.Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    return path


def sample_keylog(capture: str) -> KeyLog:
    return read_keylog(SAMPLES / "keylogs" / (capture.rsplit(".", 1)[0] + ".keys"))


@functools.cache
def tshark_leaves() -> dict[str, tuple[str, dict[tuple[int, int], str]]]:
    """capture -> (capture sha256, {(src port, dst port): leaf sha256}) from tshark_leaf.tsv."""
    out: dict[str, tuple[str, dict[tuple[int, int], str]]] = {}
    with open(DATA / "tshark_leaf.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            entry = out.setdefault(row["capture"], (row["capture_sha256"], {}))
            entry[1][(int(row["src_port"]), int(row["dst_port"]))] = row["leaf_sha256"]
    return out


def tshark_leaf_now(path: pathlib.Path, keys: pathlib.Path) -> dict[tuple[int, int], str]:
    """The same oracle, asked of tshark now (when the capture changed since the TSV was made)."""
    if shutil.which("tshark") is None:
        pytest.skip("capture changed since tshark_leaf.tsv and tshark is not installed")
    res = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-o",
            f"tls.keylog_file:{keys}",
            "-Y",
            "tls.handshake.type == 11",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tls.handshake.certificate",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = {}
    for line in res.stdout.splitlines():
        sp, dp, certs = ([*line.split("\t"), "", "", ""])[:3]
        if certs:
            out[(int(sp), int(dp))] = hashlib.sha256(bytes.fromhex(certs.split(",")[0])).hexdigest()
    return out


TLS13_CAPTURES = [
    "cert-expired.pcap",
    "tls13-openssl-bulk.pcapng",
    "tls13-hrr-openssl.pcap",
    "resumption-openssl.pcap",
    "go-ok.pcap",
    "gnutls-ok.pcap",
    "node-ok.pcap",
    "python-ssl-ok.pcap",
    "mtls-client-cert-rejected.pcapng",
    "ipv6-openssl.pcap",
    "tls13-curl-alpn.pcap",
    "client-aborted.pcap",
    "cert-weak-rsa1024.pcapng",
]


@pytest.mark.parametrize("capture", TLS13_CAPTURES)
def test_tls13_server_flight_and_leaf_match_tshark(capture: str) -> None:
    path = sample(capture)
    log = sample_keylog(capture)
    digest, leaves = tshark_leaves()[f"samples/{capture}"]
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        leaves = tshark_leaf_now(path, SAMPLES / "keylogs" / (capture.rsplit(".", 1)[0] + ".keys"))
    checked = 0
    for conn in connections(path):
        hello = hellos(conn)
        if hello is None or hello.version != 0x0304 or not conn.complete:
            continue
        dec = decryptor(log, hello)
        plain = run(dec, conn)
        types = plain.types(SERVER)
        assert status(dec) == DecryptStatus.DECRYPTED, (conn.client_port, dec.last_error)
        assert types[0] == 8 and 20 in types, types  # EncryptedExtensions ... Finished
        if 11 not in types:  # PSK resumption: no certificate
            assert types[: types.index(20) + 1] == [8, 20]
            continue
        flight = types[: types.index(20) + 1]
        assert flight in ([8, 11, 15, 20], [8, 13, 11, 15, 20]), flight  # optionally CertificateRequest
        cert_msg = next(x for x in plain.messages[SERVER] if x.msg_type == 11)
        leaf = m.parse_certificate(cert_msg.body, tls13=True).chain[0]
        assert hashlib.sha256(leaf).hexdigest() == leaves[(conn.server_port, conn.client_port)]
        checked += 1
    assert checked >= 1


def test_hrr_connection_decrypts() -> None:
    path = sample("tls13-hrr-openssl.pcap")
    conns = [c for c in connections(path) if (hh := hellos(c)) is not None and hh.hrr]
    assert conns
    hello = hellos(conns[0])
    assert hello is not None
    plain = run(decryptor(sample_keylog("tls13-hrr-openssl.pcap"), hello), conns[0])
    assert plain.types(SERVER)[:4] == [8, 11, 15, 20] and plain.types(CLIENT)[:1] == [20]


def test_tls13_encrypted_alerts_in_cert_expired() -> None:
    """GnuTLS and Go clients encrypt bad_certificate(42) in TLS 1.3; Java certificate_unknown(46) (samples/README.md)."""
    path = sample("cert-expired.pcap")
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    who = {
        c["client_port"]: c["client"].split()[0]
        for e in manifest
        if e["file"] == "cert-expired.pcap"
        for c in e["connections"]
        if c["tls_version_intended"] == "1.3"
    }
    log = sample_keylog("cert-expired.pcap")
    seen: dict[str, list[tuple[int, int]]] = {}
    for conn in connections(path):
        hello = hellos(conn)
        if hello is None or hello.version != 0x0304 or conn.client_port not in who:
            continue
        dec = decryptor(log, hello)
        plain = run(dec, conn)
        seen[who[conn.client_port]] = plain.alerts(CLIENT)
        if who[conn.client_port] in ("GnuTLS", "Go"):
            wire = [r for r in conn.records[CLIENT] if r.content_type == 23]
            assert [r.length for r in wire] == [19]  # the lone 19-byte record
            assert dec.phase(CLIENT) == "handshake"  # no client Finished: still under the handshake keys
    assert seen["GnuTLS"] == [(2, 42)]
    assert seen["Go"] == [(2, 42)]
    assert seen["Java"] == [(2, 46)]
    assert seen["OpenSSL"] == []  # its alert travels in clear


TLS12_CAPTURES = [
    ("tls12-openssl-bulk.pcap", {0xC02C}),
    ("legacy-tls10-tls12rsa.pcap", {0xC014, 0x009C}),  # TLS 1.0 CBC (MD5+SHA1 PRF, chained IV) and RSA GCM
    ("go-ok.pcap", {0xC02B}),
    ("node-ok.pcap", {0xC02B}),
    ("resumption-openssl.pcap", {0xC02C}),  # includes an abbreviated handshake: the server's CCS comes first
]


@pytest.mark.parametrize(("capture", "suites"), TLS12_CAPTURES)
def test_tls12_finished_both_directions(capture: str, suites: set[int]) -> None:
    path = sample(capture)
    log = sample_keylog(capture)
    seen: set[int] = set()
    for conn in connections(path):
        hello = hellos(conn)
        if hello is None or hello.version == 0x0304:
            continue
        seen.add(hello.suite)
        dec = decryptor(log, hello)
        plain = run(dec, conn)
        assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0, dec.last_error
        for side in (CLIENT, SERVER):
            fin = plain.messages[side][0]
            assert fin.msg_type == 20 and len(fin.body) == 12
    assert seen == suites


def test_tls12_bulk_application_data_and_close_notify() -> None:
    path = sample("tls12-openssl-bulk.pcap")
    (conn,) = connections(path)
    hello = hellos(conn)
    assert hello is not None
    dec = decryptor(sample_keylog("tls12-openssl-bulk.pcap"), hello)
    plain = run(dec, conn)
    assert len(plain.app_data(CLIENT)) == 100000  # manifest: ApplicationData x13 (100312B = + 13 x 24 nonce and tag)
    assert plain.alerts(CLIENT) == [(1, 0)] and plain.alerts(SERVER) == [(1, 0)]


def test_no_key_for_java_tls13_and_psk_sample() -> None:
    # the Java TLS 1.3 server writes no key log; server-aborted.keys holds only a comment
    path = sample("java-ok.pcapng")
    statuses = []
    for conn in connections(path):
        hello = hellos(conn)
        assert hello is not None
        res = Decryptor.for_connection(
            sample_keylog("java-ok.pcapng"), hello.client_random, hello.server_random, hello.suite, hello.version
        )
        statuses.append((hello.version, res if isinstance(res, DecryptStatus) else res.status))
    assert sorted(statuses) == [(0x0303, DecryptStatus.PENDING), (0x0304, DecryptStatus.NO_KEY)]
    log = sample_keylog("server-aborted.pcap")
    assert not log.entries and log.skipped_lines == 0
    (conn,) = connections(sample("server-aborted.pcap"))
    hello = hellos(conn)
    assert hello is not None and hello.suite == 0x00A8  # TLS_PSK_WITH_AES_128_GCM_SHA256
    assert Decryptor.for_connection(log, hello.client_random, hello.server_random, hello.suite, hello.version) == (
        DecryptStatus.NO_KEY
    )


def test_wrong_keylog_on_a_real_capture_is_key_mismatch() -> None:
    """Keys of another capture relabelled with this capture's randoms: every record fails, none passes."""
    path = sample("gnutls-ok.pcap")
    other = sample_keylog("node-ok.pcap")
    secrets = [dict(v) for v in other.entries.values()]
    tls13 = next(s for s in secrets if "SERVER_HANDSHAKE_TRAFFIC_SECRET" in s)
    tls12 = next(s for s in secrets if "CLIENT_RANDOM" in s)
    for conn in connections(path):
        hello = hellos(conn)
        assert hello is not None
        src = tls13 if hello.version == 0x0304 else tls12
        log = parse_keylog("\n".join(f"{k} {hello.client_random.hex()} {v.hex()}" for k, v in src.items()))
        dec = decryptor(log, hello)
        run(dec, conn)
        assert status(dec) == DecryptStatus.KEY_MISMATCH and dec.decrypted_records == 0


def test_dsb_keylog_parses_and_decrypts() -> None:
    path = sample("python-ssl-ok-dsb.pcapng")
    reader = CaptureReader(path)
    for _ in reader.blocks():
        pass
    logs = [keylog_from_dsb(s.secrets_type, s.data) for s in reader.info.secrets]
    assert logs and all(x is not None for x in logs)
    log = merge(*(x for x in logs if x is not None))
    assert log.skipped_lines == 0
    assert log.entries == sample_keylog("python-ssl-ok.pcap").entries
    conns = connections(path)
    assert len(conns) == 2
    for conn in conns:
        hello = hellos(conn)
        assert hello is not None
        dec = decryptor(log, hello)
        plain = run(dec, conn)
        assert status(dec) == DecryptStatus.DECRYPTED and dec.failed_records == 0
        assert 20 in plain.types(CLIENT) and 20 in plain.types(SERVER)
