"""NSS key logs and sans-IO TLS record decryption: the TLS 1.3 key schedule and the TLS 1.0-1.2 key block."""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from analyzer.errors import ParseError
from analyzer.tls.ciphers import CIPHER_SUITES
from analyzer.tls.messages import parse_server_hello
from analyzer.tls.records import CT_APPDATA, CT_CCS, CT_HANDSHAKE, HandshakeAssembler, Record

# --------------------------------------------------------------------------- NSS key log

# The labels of the NSS key log format (https://firefox-source-docs.mozilla.org/security/nss/legacy/key_log_format/)
CLIENT_RANDOM = "CLIENT_RANDOM"  # TLS <= 1.2: the 48-byte master secret
CLIENT_EARLY_TRAFFIC_SECRET = "CLIENT_EARLY_TRAFFIC_SECRET"  # TLS 1.3 0-RTT
CLIENT_HANDSHAKE_TRAFFIC_SECRET = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE_TRAFFIC_SECRET = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_TRAFFIC_SECRET_0 = "CLIENT_TRAFFIC_SECRET_0"
SERVER_TRAFFIC_SECRET_0 = "SERVER_TRAFFIC_SECRET_0"
RSA_LABEL = "RSA"  # "RSA <first 8 bytes of the encrypted pre-master secret> <pre-master secret>"
DSB_TLS_KEY_LOG = 0x544C534B  # pcapng Decryption Secrets Block type 'TLSK': NSS key log text

MASTER_SECRET_LEN = 48
RANDOM_LEN = 32
MAX_SECRET_LEN = 64  # SHA-512 sized; real secrets are 32 or 48 bytes
MAX_LINE = 1024
_LABEL_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")


@dataclass(frozen=True, slots=True)
class KeyLog:
    """Secrets of an NSS key log, indexed by the 32-byte client random.

    ``entries[client_random][label] = secret``. ``skipped_lines`` counts lines that are not
    comments or blank and could not be used: malformed ones, and ones contradicting an earlier
    line for the same client random and label (the first value is kept). ``rsa_premaster``
    keeps ``RSA`` lines (encrypted pre-master prefix -> pre-master secret); they are not used
    for decryption (that needs the ClientKeyExchange), only kept.
    """

    entries: Mapping[bytes, Mapping[str, bytes]]
    skipped_lines: int = 0
    rsa_premaster: Mapping[bytes, bytes] = field(default_factory=lambda: MappingProxyType({}))

    def secret(self, client_random: bytes, label: str) -> bytes | None:
        by_label = self.entries.get(client_random)
        return None if by_label is None else by_label.get(label)

    def __len__(self) -> int:
        return len(self.entries)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # read-only views do not pickle; --jobs sends the key log to worker processes as plain dicts
        plain = {k: dict(v) for k, v in self.entries.items()}
        return _thaw, (plain, self.skipped_lines, dict(self.rsa_premaster))


def _thaw(entries: dict[bytes, dict[str, bytes]], skipped: int, rsa: dict[bytes, bytes]) -> KeyLog:
    return KeyLog(_freeze(entries), skipped, MappingProxyType(rsa))


def _freeze(entries: dict[bytes, dict[str, bytes]]) -> Mapping[bytes, Mapping[str, bytes]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in entries.items()})


def parse_keylog(text: str | bytes) -> KeyLog:
    """Parse NSS key log text. Never raises: what cannot be read is counted in ``skipped_lines``.

    Blank lines and ``#`` comments are ignored. A line is ``LABEL <hex client random> <hex secret>``;
    every well-formed label is kept (EXPORTER_SECRET, CLIENT_EARLY_TRAFFIC_SECRET, ... are kept but
    not used). ``CLIENT_RANDOM`` needs a 48-byte master secret; other secrets are 1-64 bytes.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("latin-1")  # one char per byte: anything not hex fails below
    text = text.removeprefix("\ufeff")
    entries: dict[bytes, dict[str, bytes]] = {}
    rsa: dict[bytes, bytes] = {}
    skipped = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(line) > MAX_LINE or len(parts) != 3:
            skipped += 1
            continue
        label, rnd_hex, secret_hex = parts
        if not (_LABEL_RE.fullmatch(label) and _HEX_RE.fullmatch(rnd_hex) and _HEX_RE.fullmatch(secret_hex)):
            skipped += 1
            continue
        rnd, secret = bytes.fromhex(rnd_hex), bytes.fromhex(secret_hex)
        if label == RSA_LABEL:
            if len(rnd) != 8 or len(secret) != MASTER_SECRET_LEN or rsa.get(rnd, secret) != secret:
                skipped += 1
            else:
                rsa[rnd] = secret
            continue
        if len(rnd) != RANDOM_LEN or len(secret) > MAX_SECRET_LEN:
            skipped += 1
            continue
        if label == CLIENT_RANDOM and len(secret) != MASTER_SECRET_LEN:
            skipped += 1
            continue
        by_label = entries.setdefault(rnd, {})
        old = by_label.get(label)
        if old is None:
            by_label[label] = secret
        elif old != secret:
            skipped += 1  # a contradiction: keep the first
    return KeyLog(_freeze(entries), skipped, MappingProxyType(rsa))


def read_keylog(path: str | os.PathLike[str]) -> KeyLog:
    """Read and parse a key log file (OSError propagates: a missing file is the caller's to report)."""
    with open(path, "rb") as f:
        return parse_keylog(f.read())


def merge(*logs: KeyLog) -> KeyLog:
    """One key log from several; for a (client random, label) present in more than one, the first wins
    (a later, different value is counted in ``skipped_lines``, as within one log)."""
    entries: dict[bytes, dict[str, bytes]] = {}
    rsa: dict[bytes, bytes] = {}
    skipped = 0
    for log in logs:
        skipped += log.skipped_lines
        for rnd, by_label in log.entries.items():
            mine = entries.setdefault(rnd, {})
            for label, secret in by_label.items():
                if mine.setdefault(label, secret) != secret:
                    skipped += 1
        for k, v in log.rsa_premaster.items():
            rsa.setdefault(k, v)
    return KeyLog(_freeze(entries), skipped, MappingProxyType(rsa))


def keylog_from_dsb(secrets_type: int, data: bytes) -> KeyLog | None:
    """The key log of a pcapng Decryption Secrets Block, or None for a secrets type other than TLS."""
    if secrets_type != DSB_TLS_KEY_LOG:
        return None
    return parse_keylog(bytes(data).rstrip(b"\0"))


# --------------------------------------------------------------------------- key derivation


def _hash(name: str) -> hashes.HashAlgorithm:
    return hashes.SHA384() if name == "sha384" else hashes.SHA256()


def hkdf_expand_label(
    secret: bytes, label: str | bytes, context: bytes, length: int, hash_name: str = "sha256"
) -> bytes:
    """HKDF-Expand-Label of RFC 8446 section 7.1 (the "tls13 " prefix is added here)."""
    full = b"tls13 " + (label.encode("ascii") if isinstance(label, str) else label)
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(_hash(hash_name), length, info).derive(secret)


@dataclass(frozen=True, slots=True)
class Tls13Suite:
    code: int
    aead: str  # "gcm", "ccm", "ccm8", "chacha"
    key_len: int
    hash_name: str  # "sha256" or "sha384"

    @property
    def hash_len(self) -> int:
        return 48 if self.hash_name == "sha384" else 32


TLS13_SUITES: dict[int, Tls13Suite] = {
    0x1301: Tls13Suite(0x1301, "gcm", 16, "sha256"),  # TLS_AES_128_GCM_SHA256
    0x1302: Tls13Suite(0x1302, "gcm", 32, "sha384"),  # TLS_AES_256_GCM_SHA384
    0x1303: Tls13Suite(0x1303, "chacha", 32, "sha256"),  # TLS_CHACHA20_POLY1305_SHA256
    0x1304: Tls13Suite(0x1304, "ccm", 16, "sha256"),  # TLS_AES_128_CCM_SHA256
    0x1305: Tls13Suite(0x1305, "ccm8", 16, "sha256"),  # TLS_AES_128_CCM_8_SHA256
}

_Aead = AESGCM | AESCCM | ChaCha20Poly1305


def _make_aead(kind: str, key: bytes) -> _Aead:
    if kind == "gcm":
        return AESGCM(key)
    if kind == "ccm":
        return AESCCM(key, tag_length=16)
    if kind == "ccm8":
        return AESCCM(key, tag_length=8)
    return ChaCha20Poly1305(key)


def _tag_len(kind: str) -> int:
    return 8 if kind == "ccm8" else 16


def tls13_traffic_keys(secret: bytes, cipher_suite: int) -> tuple[bytes, bytes]:
    """(write key, write iv) from a TLS 1.3 traffic secret (RFC 8446 section 7.3); ValueError for another suite."""
    suite = TLS13_SUITES.get(cipher_suite)
    if suite is None:
        raise ValueError(f"not a supported TLS 1.3 cipher suite: 0x{cipher_suite:04x}")
    key = hkdf_expand_label(secret, "key", b"", suite.key_len, suite.hash_name)
    iv = hkdf_expand_label(secret, "iv", b"", 12, suite.hash_name)
    return key, iv


def tls13_next_secret(secret: bytes, cipher_suite: int) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 section 7.2)."""
    suite = TLS13_SUITES[cipher_suite]
    return hkdf_expand_label(secret, "traffic upd", b"", suite.hash_len, suite.hash_name)


def _p_hash(name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.digest(secret, a, name)
        out += hmac.digest(secret, a + seed, name)
    return bytes(out[:length])


def tls_prf(secret: bytes, label: bytes, seed: bytes, length: int, version: int, hash_name: str = "sha256") -> bytes:
    """The TLS PRF: P_<hash> for TLS 1.2 (RFC 5246 section 5), P_MD5 xor P_SHA1 for TLS 1.0/1.1 (RFC 2246 section 5)."""
    if version >= 0x0303:
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, length)
    sha = _p_hash("sha1", secret[len(secret) - half :], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha, strict=True))


@dataclass(frozen=True, slots=True)
class Tls12Suite:
    code: int
    cipher: str  # "gcm", "ccm", "ccm8", "chacha", "cbc"
    key_len: int
    mac: str | None  # HMAC hash of a CBC suite: "sha1", "sha256", "sha384"
    prf_hash: str  # "sha256" or "sha384" (TLS 1.2 PRF)

    @property
    def mac_len(self) -> int:
        return {"sha1": 20, "sha256": 32, "sha384": 48}.get(self.mac or "", 0)

    @property
    def iv_len(self) -> int:
        """Bytes of IV material from the key block: the implicit salt (AEAD) or TLS 1.0's first CBC IV."""
        return {"gcm": 4, "ccm": 4, "ccm8": 4, "chacha": 12}.get(self.cipher, 16)


_TLS12_NAME = re.compile(
    r"_WITH_(?:AES_(?P<bits>128|256)_(?P<mode>GCM|CBC|CCM_8|CCM)(?:_(?P<h>SHA384|SHA256|SHA))?|(?P<chacha>CHACHA20_POLY1305)_SHA256)$"
)


def tls12_suite(cipher_suite: int) -> Tls12Suite | None:
    """Decryption parameters of a TLS 1.0-1.2 suite we can decrypt (AES-GCM/CCM/CBC, ChaCha20-Poly1305), else None."""
    name = CIPHER_SUITES.get(cipher_suite, "")
    m = _TLS12_NAME.search(name)
    if m is None:
        return None
    if m["chacha"]:
        return Tls12Suite(cipher_suite, "chacha", 32, None, "sha256")
    key_len = 16 if m["bits"] == "128" else 32
    h = m["h"]
    prf = "sha384" if h == "SHA384" else "sha256"
    mode = m["mode"]
    if mode == "CBC":
        if h is None:
            return None
        return Tls12Suite(cipher_suite, "cbc", key_len, {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}[h], prf)
    if mode == "GCM" and h not in ("SHA256", "SHA384"):
        return None
    return Tls12Suite(cipher_suite, {"GCM": "gcm", "CCM": "ccm", "CCM_8": "ccm8"}[mode], key_len, None, prf)


# --------------------------------------------------------------------------- decryption


class DecryptStatus(StrEnum):
    DECRYPTED = "decrypted"  # at least one record authenticated with the logged keys
    NO_KEY = "no_key"  # the key log has nothing (usable) for this connection, or for this record's epoch
    KEY_MISMATCH = "key_mismatch"  # a tag/MAC failed and nothing ever authenticated: the key does not fit
    UNSUPPORTED_SUITE = "unsupported_suite"  # a version or cipher suite we cannot decrypt
    PENDING = "pending"  # keys found, no protected record seen yet


class _KeyedState:
    """Read state holding an AEAD object: cipher objects do not pickle (--jobs sends connections
    between processes), so it travels without one and is rebuilt from the key."""

    __slots__: tuple[str, ...] = ()

    def _aead_kind(self) -> str | None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__ if k != "aead"}

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        kind = self._aead_kind()
        object.__setattr__(self, "aead", None if kind is None else _make_aead(kind, state["key"]))  # type: ignore[arg-type]


class _Epoch13(_KeyedState):
    """TLS 1.3 keys of one direction for one epoch (early, handshake, application N)."""

    __slots__ = ("aead", "iv", "key", "kind", "secret", "seq", "tag_len")

    def __init__(self, secret: bytes, suite: Tls13Suite) -> None:
        key, iv = tls13_traffic_keys(secret, suite.code)
        self.secret = secret
        self.key = key
        self.kind = suite.aead
        self.aead = _make_aead(suite.aead, key)
        self.iv = iv
        self.tag_len = _tag_len(suite.aead)
        self.seq = 0

    def open(self, rec: Record) -> bytes | None:
        payload = rec.payload
        if len(payload) <= self.tag_len:  # not even a content type besides the tag
            return None
        nonce = (int.from_bytes(self.iv, "big") ^ self.seq).to_bytes(12, "big")
        aad = bytes([rec.content_type]) + rec.version.to_bytes(2, "big") + len(payload).to_bytes(2, "big")
        try:
            plain = self.aead.decrypt(nonce, payload, aad)
        except InvalidTag:
            return None
        self.seq += 1
        return plain

    def _aead_kind(self) -> str | None:
        return self.kind


class _Direction12(_KeyedState):
    """TLS 1.0-1.2 read state of one direction."""

    __slots__ = (
        "active",
        "aead",
        "cbc_iv",
        "dead",
        "etm",
        "iv",
        "key",
        "mac_key",
        "malformed",
        "seq",
        "suite",
        "version",
    )

    def __init__(
        self, suite: Tls12Suite, version: int, mac_key: bytes, key: bytes, iv: bytes, etm: bool | None
    ) -> None:
        self.suite = suite
        self.version = version
        self.mac_key = mac_key
        self.key = key
        self.iv = iv
        self.cbc_iv = iv  # TLS 1.0: the IV of the next record (last ciphertext block of the previous one)
        self.aead: _Aead | None = None if suite.cipher == "cbc" else _make_aead(suite.cipher, key)
        self.etm = etm  # encrypt_then_mac (RFC 7366); None = find out from the first record
        self.active = False  # after this side's ChangeCipherSpec
        self.dead: DecryptStatus | None = None  # renegotiated to keys we do not have
        self.malformed = False  # the last record authenticated but its plaintext is malformed
        self.seq = 0

    def _aead_kind(self) -> str | None:
        return None if self.suite.cipher == "cbc" else self.suite.cipher

    def _header(self, ct: int, version: int, length: int) -> bytes:
        return self.seq.to_bytes(8, "big") + bytes([ct]) + version.to_bytes(2, "big") + length.to_bytes(2, "big")

    def open(self, rec: Record) -> bytes | str:
        """The plaintext, or why the record did not authenticate (a string)."""
        self.malformed = False
        out = self._open_aead(rec) if self.aead is not None else self._open_cbc(rec)
        if isinstance(out, bytes):
            self.seq += 1
        return out

    def _open_aead(self, rec: Record) -> bytes | str:
        assert self.aead is not None
        p = rec.payload
        tag = _tag_len(self.suite.cipher)
        if self.suite.cipher == "chacha":  # RFC 7905: no explicit nonce
            if len(p) < tag:
                return "record shorter than the AEAD tag"
            nonce = (int.from_bytes(self.iv, "big") ^ self.seq).to_bytes(12, "big")
            body = p
        else:  # GCM (RFC 5288) / CCM (RFC 6655): 4-byte implicit salt + 8-byte explicit nonce
            if len(p) < 8 + tag:
                return "record shorter than the explicit nonce and AEAD tag"
            nonce = self.iv + p[:8]
            body = p[8:]
        aad = self._header(rec.content_type, rec.version, len(body) - tag)
        try:
            return self.aead.decrypt(nonce, body, aad)
        except InvalidTag:
            return "AEAD tag did not verify"

    def _cbc_decrypt(self, iv: bytes, ct: bytes) -> bytes:
        dec = Cipher(algorithms.AES(self.key), modes.CBC(iv)).decryptor()
        return dec.update(ct) + dec.finalize()

    @staticmethod
    def _unpad(pt: bytes, reserve: int) -> int | None:
        """Length of the content before padding (and ``reserve`` MAC bytes), or None if the padding is bad."""
        if not pt:
            return None
        pad = pt[-1]
        end = len(pt) - pad - 1 - reserve
        if end < 0 or pt[len(pt) - pad - 1 : -1] != bytes([pad]) * pad:
            return None
        return end

    def _mac(self, ct: int, version: int, data: bytes) -> bytes:
        assert self.suite.mac is not None
        return hmac.digest(self.mac_key, self._header(ct, version, len(data)) + data, self.suite.mac)

    def _open_cbc(self, rec: Record) -> bytes | str:
        p = rec.payload
        maclen = self.suite.mac_len
        explicit = self.version >= 0x0302  # TLS 1.1+: an explicit IV leads each record
        first = 16 if explicit else 0
        if self.etm is not False:  # encrypt_then_mac (RFC 7366): MAC over IV + ciphertext, after them
            if len(p) >= first + 16 + maclen and (len(p) - maclen - first) % 16 == 0:
                body, mac = p[:-maclen], p[-maclen:]
                iv = body[:16] if explicit else self.cbc_iv
                if not explicit:
                    self.cbc_iv = body[-16:]
                if hmac.compare_digest(self._mac(rec.content_type, rec.version, body), mac):
                    self.etm = True
                    pt = self._cbc_decrypt(iv, body[first:])
                    end = self._unpad(pt, 0)
                    if end is None:  # authenticated, yet badly padded: the peer's fault, not the key's
                        self.malformed = True
                        return b""
                    return pt[:end]
                if self.etm:
                    return "MAC (encrypt_then_mac) did not verify"
                if not explicit:
                    self.cbc_iv = iv  # undo: try MAC-then-encrypt below
            elif self.etm:
                return "record length impossible with encrypt_then_mac"
        # MAC-then-encrypt (without the encrypt_then_mac extension)
        if len(p) < first + 16 or (len(p) - first) % 16:
            return "CBC record not a whole number of blocks"
        iv = p[:16] if explicit else self.cbc_iv
        ct_bytes = p[first:]
        if not explicit:
            self.cbc_iv = ct_bytes[-16:]
        pt = self._cbc_decrypt(iv, ct_bytes)
        end = self._unpad(pt, maclen)
        if end is None:
            return "bad CBC padding (MAC-then-encrypt)"  # with the right key the padding is right
        content, mac = pt[:end], pt[end : end + maclen]
        if not hmac.compare_digest(self._mac(rec.content_type, rec.version, content), mac):
            return "MAC did not verify"
        self.etm = False
        return content


def _tls12_directions(
    master: bytes, client_random: bytes, server_random: bytes, suite: Tls12Suite, version: int, etm: bool | None
) -> list[_Direction12]:
    """Client->server and server->client read states from the key block (RFC 5246 section 6.3)."""
    mac, key, iv = suite.mac_len, suite.key_len, suite.iv_len
    block = tls_prf(
        master, b"key expansion", server_random + client_random, 2 * (mac + key + iv), version, suite.prf_hash
    )
    cut = [0, mac, 2 * mac, 2 * mac + key, 2 * (mac + key), 2 * (mac + key) + iv, 2 * (mac + key + iv)]
    parts = [block[cut[i] : cut[i + 1]] for i in range(6)]
    return [
        _Direction12(suite, version, parts[0], parts[2], parts[4], etm),
        _Direction12(suite, version, parts[1], parts[3], parts[5], etm),
    ]


class _HandshakeTracker:
    """Message boundaries of one side's decrypted handshake stream (types only; no bodies kept)."""

    __slots__ = ("_head", "_remaining")

    def __init__(self) -> None:
        self._head = bytearray()
        self._remaining = 0

    def feed(self, data: bytes) -> list[int]:
        """Types of the messages that end in ``data``."""
        done: list[int] = []
        pos, n = 0, len(data)
        while pos < n:
            if self._remaining:
                take = min(self._remaining, n - pos)
                self._remaining -= take
                pos += take
                if not self._remaining:
                    done.append(self._head[0])
                    self._head.clear()
                continue
            take = min(4 - len(self._head), n - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == 4:
                self._remaining = int.from_bytes(self._head[1:4], "big")
                if not self._remaining:
                    done.append(self._head[0])
                    self._head.clear()
        return done


HS_END_OF_EARLY_DATA, HS_FINISHED, HS_KEY_UPDATE = 5, 20, 24
_EARLY, _HANDSHAKE, _APPLICATION = 0, 1, 2


class Decryptor:
    """Decrypts the protected records of one TLS connection, both directions; sans-IO.

    Feed each side's records in order (``side`` 0 = client->server, 1 = server->client; the two
    sides interleaved as captured). ``decrypt`` returns

    - the inner plaintext record (TLS 1.3: the real content type from TLSInnerPlaintext, padding
      stripped; TLS 1.0-1.2: explicit nonce/IV, MAC and padding removed). A record that
      authenticates but whose plaintext is malformed (all-zero TLS 1.3 inner plaintext, bad CBC
      padding under a valid encrypt_then_mac MAC) comes back as ``Record(0, version, b"")``;
    - the record itself when it is not protected: in TLS 1.3 any content type but
      application_data(23) (hellos, the compatibility ChangeCipherSpec, alerts sent in clear); in
      TLS 1.0-1.2 a ChangeCipherSpec, and anything before that side's ``change_cipher_spec``;
    - None when no plaintext could be produced. ``last_status`` then says why: KEY_MISMATCH (the
      tag/MAC did not verify, or the record cannot be a protected record of this suite),
      NO_KEY (the key log lacks the secret of this epoch: application secrets of a handshake that
      never finished, the master secret of a renegotiated session). ``last_error`` has the detail.

    A record that fails does not consume a sequence number (0-RTT records the server skipped,
    or that we lack the early secret for, precede the client's handshake records at sequence 0).
    ``status``: PENDING until a protected record was seen; DECRYPTED once one authenticated (it
    stays so); KEY_MISMATCH while tags failed and none verified. ``decrypted_records`` and
    ``failed_records`` count the outcomes.

    TLS 1.3 key switches (RFC 8446 sections 4.4.4, 4.6.3, 5.1, 7.2), per side. Each side starts
    under its handshake traffic keys; the client starts under its early traffic keys when
    CLIENT_EARLY_TRAFFIC_SECRET is logged (a client record that fails under those is tried under
    the handshake keys, and the early keys are dropped once that works: early data rejected or
    not sent). Decrypted handshake records are followed message by message (4-byte headers,
    across record boundaries). After the record in which that side's Finished(20) ends, the side
    switches to CLIENT_/SERVER_TRAFFIC_SECRET_0 keys (Finished must end its record, section 5.1);
    EndOfEarlyData(5) moves the client from early to handshake keys; a KeyUpdate(24) under
    application keys moves that side to the next application secret ("traffic upd"). A Finished
    under application keys (post-handshake client authentication) switches nothing.

    TLS 1.0-1.2: the key block comes from the master secret (CLIENT_RANDOM line) through the PRF
    (P_SHA256 / P_SHA384 in TLS 1.2, MD5+SHA1 in 1.0/1.1); each side's records are protected after
    ``change_cipher_spec(side)`` and each record consumes a sequence number on success. CBC suites:
    TLS 1.0 chains the IV across records, 1.1+ carry an explicit IV; encrypt_then_mac (RFC 7366)
    is recognised from the first record's MAC unless ``encrypt_then_mac`` was given. A
    renegotiation is followed: its hellos, decrypted under the current keys, give the new randoms
    and suite, and a side's second ChangeCipherSpec switches it to the keys of the key log's
    master secret for the new client random.
    """

    __slots__ = (
        "_app",
        "_early",
        "_handshake",
        "_hello_asm",
        "_hs",
        "_keylog",
        "_phase",
        "_renego",
        "_renego_keys",
        "_tls12",
        "cipher_suite",
        "decrypted_records",
        "failed_records",
        "last_error",
        "last_status",
        "status",
        "version",
    )

    def __init__(self, version: int, cipher_suite: int) -> None:
        self.version = version
        self.cipher_suite = cipher_suite
        self.status = DecryptStatus.PENDING
        self.last_status = DecryptStatus.PENDING
        self.last_error: str | None = None
        self.decrypted_records = 0
        self.failed_records = 0
        # TLS 1.3: per side, the handshake and (current) application epochs, or why there is none
        self._handshake: list[_Epoch13 | DecryptStatus] = [DecryptStatus.NO_KEY, DecryptStatus.NO_KEY]
        self._app: list[_Epoch13 | DecryptStatus] = [DecryptStatus.NO_KEY, DecryptStatus.NO_KEY]
        self._early: _Epoch13 | None = None
        self._phase = [_HANDSHAKE, _HANDSHAKE]
        self._hs = (_HandshakeTracker(), _HandshakeTracker())
        # TLS 1.0-1.2
        self._tls12: list[_Direction12] | None = None
        self._keylog: KeyLog | None = None  # to follow a renegotiation
        self._hello_asm = (HandshakeAssembler(), HandshakeAssembler())
        self._renego: list[bytes | int | None] = [None, None, None]  # new client random, server random, suite
        self._renego_keys: list[_Direction12] | DecryptStatus | None = None

    # ---------------------------------------------------------------- construction

    @classmethod
    def for_connection(
        cls,
        keylog: KeyLog,
        client_random: bytes,
        server_random: bytes,
        cipher_suite: int,
        version: int,
        *,
        encrypt_then_mac: bool | None = None,
    ) -> Decryptor | DecryptStatus:
        """A decryptor for the connection, or why there is none (NO_KEY, UNSUPPORTED_SUITE, KEY_MISMATCH).

        ``version`` is the negotiated one (ServerHello supported_versions, else its legacy_version).
        NO_KEY: the client random is not in the key log, or not with the secrets this version needs.
        UNSUPPORTED_SUITE: SSL 2/3, TLS 1.3 drafts, DTLS, or a suite other than AES-GCM/CCM/CBC and
        ChaCha20-Poly1305. KEY_MISMATCH: every logged TLS 1.3 secret has the wrong length for the suite.
        """
        secrets = keylog.entries.get(bytes(client_random)) if len(client_random) == RANDOM_LEN else None
        if not secrets:
            return DecryptStatus.NO_KEY
        if version == 0x0304:
            return cls._for_tls13(secrets, cipher_suite)
        if version not in (0x0301, 0x0302, 0x0303):
            return DecryptStatus.UNSUPPORTED_SUITE
        suite = tls12_suite(cipher_suite)
        if suite is None or (suite.cipher != "cbc" and version < 0x0303):
            return DecryptStatus.UNSUPPORTED_SUITE
        master = secrets.get(CLIENT_RANDOM)
        if master is None or len(server_random) != RANDOM_LEN:
            return DecryptStatus.NO_KEY
        dec = cls(version, cipher_suite)
        dec._tls12 = _tls12_directions(
            master, bytes(client_random), bytes(server_random), suite, version, encrypt_then_mac
        )
        dec._keylog = keylog
        return dec

    @classmethod
    def _for_tls13(cls, secrets: Mapping[str, bytes], cipher_suite: int) -> Decryptor | DecryptStatus:
        suite = TLS13_SUITES.get(cipher_suite)
        if suite is None:
            return DecryptStatus.UNSUPPORTED_SUITE
        labels = (
            CLIENT_HANDSHAKE_TRAFFIC_SECRET,
            SERVER_HANDSHAKE_TRAFFIC_SECRET,
            CLIENT_TRAFFIC_SECRET_0,
            SERVER_TRAFFIC_SECRET_0,
            CLIENT_EARLY_TRAFFIC_SECRET,
        )
        found = [secrets.get(label) for label in labels]
        if not any(found):
            return DecryptStatus.NO_KEY

        def epoch(secret: bytes | None) -> _Epoch13 | DecryptStatus:
            if secret is None:
                return DecryptStatus.NO_KEY
            if len(secret) != suite.hash_len:
                return DecryptStatus.KEY_MISMATCH
            return _Epoch13(secret, suite)

        epochs = [epoch(s) for s in found]
        if all(e == DecryptStatus.KEY_MISMATCH for e, s in zip(epochs, found, strict=True) if s is not None):
            return DecryptStatus.KEY_MISMATCH
        dec = cls(0x0304, cipher_suite)
        dec._handshake = [epochs[0], epochs[1]]
        dec._app = [epochs[2], epochs[3]]
        early = epochs[4]
        if isinstance(early, _Epoch13):
            dec._early = early
            dec._phase[0] = _EARLY
        return dec

    # ---------------------------------------------------------------- input

    @property
    def tls13(self) -> bool:
        return self._tls12 is None

    def change_cipher_spec(self, side: int) -> None:
        """TLS <= 1.2: records from ``side`` are protected from now on (a no-op in TLS 1.3).

        A second ChangeCipherSpec from a side ends a renegotiation: its new keys come from the
        randoms of the (decrypted) renegotiation hellos and the key log's master secret for them.
        """
        _check_side(side)
        if self._tls12 is None:
            return
        d = self._tls12[side]
        if not d.active and d.dead is None:
            d.active = True
            return
        if self._renego_keys is None:
            self._renego_keys = self._renegotiated_keys()
        if isinstance(self._renego_keys, DecryptStatus):
            d.dead = self._renego_keys
        else:
            self._tls12[side] = self._renego_keys[side]
            self._tls12[side].active = True

    def _renegotiated_keys(self) -> list[_Direction12] | DecryptStatus:
        cr, sr, code = self._renego
        if not isinstance(cr, bytes) or not isinstance(sr, bytes) or not isinstance(code, int):
            return DecryptStatus.NO_KEY  # the renegotiation hellos were not read
        suite = tls12_suite(code)
        if suite is None or (suite.cipher != "cbc" and self.version < 0x0303):
            return DecryptStatus.UNSUPPORTED_SUITE
        master = self._keylog.secret(cr, CLIENT_RANDOM) if self._keylog is not None else None
        if master is None:
            return DecryptStatus.NO_KEY
        self.cipher_suite = code
        return _tls12_directions(master, cr, sr, suite, self.version, None)

    def decrypt(self, side: int, record: Record) -> Record | None:
        """The plaintext of ``record`` from ``side``; see the class documentation."""
        _check_side(side)
        self.last_error = None
        if self._tls12 is not None:
            return self._decrypt12(side, record)
        if record.content_type != CT_APPDATA:
            self.last_status = self.status
            return record  # not protected in TLS 1.3
        phase = self._phase[side]
        plain: bytes | None = None
        if phase == _EARLY and self._early is not None:
            plain = self._early.open(record)
            if plain is None:
                hs = self._handshake[side]
                if isinstance(hs, _Epoch13):
                    plain = hs.open(record)
                    if plain is not None:  # no (more) early data: the handshake flight began
                        self._phase[side] = phase = _HANDSHAKE
                        self._early = None
        else:
            epoch = self._handshake[side] if phase == _HANDSHAKE else self._app[side]
            if not isinstance(epoch, _Epoch13):
                why = "no secret for this epoch in the key log" if epoch == DecryptStatus.NO_KEY else None
                return self._fail(epoch, why or "the logged secret has the wrong length for the suite")
            plain = epoch.open(record)
        if plain is None:
            return self._fail(DecryptStatus.KEY_MISMATCH, "AEAD tag did not verify")
        self._ok()
        end = len(plain)
        while end and not plain[end - 1]:
            end -= 1
        if not end:
            self.last_error = "authenticated, but the inner plaintext has no content type (all zero)"
            return Record(0, record.version, b"")
        inner = Record(plain[end - 1], record.version, plain[: end - 1])
        if inner.content_type == CT_HANDSHAKE:
            self._after_handshake(side, phase, self._hs[side].feed(inner.payload))
        return inner

    def _after_handshake(self, side: int, phase: int, types: list[int]) -> None:
        """Key changes caused by the handshake messages that ended in a decrypted record."""
        for t in types:
            if t == HS_END_OF_EARLY_DATA and phase == _EARLY:
                self._phase[side] = _HANDSHAKE
                self._early = None
            elif t == HS_FINISHED and phase == _HANDSHAKE:
                self._phase[side] = _APPLICATION
            elif t == HS_KEY_UPDATE and phase == _APPLICATION:
                cur = self._app[side]
                if isinstance(cur, _Epoch13):
                    suite = TLS13_SUITES[self.cipher_suite]
                    self._app[side] = _Epoch13(tls13_next_secret(cur.secret, self.cipher_suite), suite)

    def _decrypt12(self, side: int, record: Record) -> Record | None:
        assert self._tls12 is not None
        d = self._tls12[side]
        if d.dead is not None:
            return self._fail(d.dead, "no keys for the renegotiated session")
        if record.content_type == CT_CCS or not d.active:
            self.last_status = self.status
            return record
        out = d.open(record)
        if isinstance(out, str):
            return self._fail(DecryptStatus.KEY_MISMATCH, out)
        self._ok()
        if d.malformed:
            self.last_error = "authenticated, but the CBC padding is malformed"
            return Record(0, record.version, b"")
        if record.content_type == CT_HANDSHAKE:
            self._renegotiation_hellos(side, out)
        return Record(record.content_type, record.version, out)

    def _renegotiation_hellos(self, side: int, payload: bytes) -> None:
        """Randoms and suite of a renegotiation (its hellos travel under the current keys)."""
        for msg in self._hello_asm[side].feed(payload):
            if side == 0 and msg.msg_type == 1 and len(msg.body) >= 2 + RANDOM_LEN:
                self._renego = [msg.body[2 : 2 + RANDOM_LEN], None, None]
                self._renego_keys = None
            elif side == 1 and msg.msg_type == 2:
                try:
                    hello = parse_server_hello(msg.body)
                except ParseError:
                    continue
                self._renego[1:] = [hello.random, hello.cipher_suite]
                self._renego_keys = None

    def _ok(self) -> None:
        self.decrypted_records += 1
        self.status = self.last_status = DecryptStatus.DECRYPTED

    def _fail(self, why: DecryptStatus, detail: str) -> Record | None:
        self.last_status = why
        self.last_error = detail
        if why == DecryptStatus.KEY_MISMATCH:
            self.failed_records += 1
            if self.status != DecryptStatus.DECRYPTED:
                self.status = DecryptStatus.KEY_MISMATCH
        return None

    # ---------------------------------------------------------------- introspection

    def keys(self, side: int) -> tuple[bytes, bytes] | None:
        """(key, iv) now used for ``side``'s records (TLS 1.2: the write key and implicit IV/salt), or None."""
        _check_side(side)
        if self._tls12 is not None:
            d = self._tls12[side]
            return d.key, d.iv
        phase = self._phase[side]
        epoch: _Epoch13 | DecryptStatus | None = (
            self._early if phase == _EARLY else self._handshake[side] if phase == _HANDSHAKE else self._app[side]
        )
        return (epoch.key, epoch.iv) if isinstance(epoch, _Epoch13) else None

    def phase(self, side: int) -> str:
        """TLS 1.3: "early", "handshake" or "application"; TLS <= 1.2: "clear", "protected" or "no keys (renegotiated)"."""
        _check_side(side)
        if self._tls12 is not None:
            d = self._tls12[side]
            return "no keys (renegotiated)" if d.dead is not None else "protected" if d.active else "clear"
        return ("early", "handshake", "application")[self._phase[side]]


def _check_side(side: int) -> None:
    if side not in (0, 1):
        raise ValueError(f"side must be 0 (client) or 1 (server), not {side!r}")
