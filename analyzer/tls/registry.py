"""Names for TLS code points (IANA registries), as data: versions, alerts, messages, extensions, groups."""

from __future__ import annotations

from analyzer.tls.ciphers import CIPHER_SUITES

CONTENT_TYPES: dict[int, str] = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",
}

VERSIONS: dict[int, str] = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}


def version_name(v: int | None) -> str | None:
    """`TLS 1.2` for 0x0303; TLS 1.3 drafts as `TLS 1.3 draft N`; None stays None."""
    if v is None:
        return None
    if v in VERSIONS:
        return VERSIONS[v]
    if v >> 8 == 0x7F:
        return f"TLS 1.3 draft {v & 0xFF}"
    if v == 0xFB1A or (v >> 8 == 0x7E):  # Facebook's / Google's experimental TLS 1.3 variants
        return f"TLS 1.3 experiment 0x{v:04x}"
    return f"unknown 0x{v:04x}"


HANDSHAKE_TYPES: dict[int, str] = {
    0: "hello_request",
    1: "client_hello",
    2: "server_hello",
    3: "hello_verify_request",
    4: "new_session_ticket",
    5: "end_of_early_data",
    6: "hello_retry_request",
    8: "encrypted_extensions",
    11: "certificate",
    12: "server_key_exchange",
    13: "certificate_request",
    14: "server_hello_done",
    15: "certificate_verify",
    16: "client_key_exchange",
    20: "finished",
    21: "certificate_url",
    22: "certificate_status",
    23: "supplemental_data",
    24: "key_update",
    25: "compressed_certificate",
    254: "message_hash",
}

ALERT_LEVELS: dict[int, str] = {1: "warning", 2: "fatal"}

ALERTS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    117: "general_error",
    120: "no_application_protocol",
    121: "ech_required",
}

EXTENSIONS: dict[int, str] = {
    0: "server_name",
    1: "max_fragment_length",
    5: "status_request",
    10: "supported_groups",
    11: "ec_point_formats",
    13: "signature_algorithms",
    14: "use_srtp",
    15: "heartbeat",
    16: "application_layer_protocol_negotiation",
    17: "status_request_v2",
    18: "signed_certificate_timestamp",
    21: "padding",
    22: "encrypt_then_mac",
    23: "extended_master_secret",
    27: "compress_certificate",
    28: "record_size_limit",
    35: "session_ticket",
    41: "pre_shared_key",
    42: "early_data",
    43: "supported_versions",
    44: "cookie",
    45: "psk_key_exchange_modes",
    47: "certificate_authorities",
    48: "oid_filters",
    49: "post_handshake_auth",
    50: "signature_algorithms_cert",
    51: "key_share",
    57: "quic_transport_parameters",
    13172: "next_protocol_negotiation",
    17513: "application_settings",
    65037: "encrypted_client_hello",
    65281: "renegotiation_info",
}

GROUPS: dict[int, str] = {
    19: "secp192r1",
    21: "secp224r1",
    22: "secp256k1",
    23: "secp256r1",
    24: "secp384r1",
    25: "secp521r1",
    26: "brainpoolP256r1",
    27: "brainpoolP384r1",
    28: "brainpoolP512r1",
    29: "x25519",
    30: "x448",
    256: "ffdhe2048",
    257: "ffdhe3072",
    258: "ffdhe4096",
    259: "ffdhe6144",
    260: "ffdhe8192",
    512: "MLKEM512",
    513: "MLKEM768",
    514: "MLKEM1024",
    4587: "SecP256r1MLKEM768",
    4588: "X25519MLKEM768",
    4589: "SecP384r1MLKEM1024",
    25497: "X25519Kyber768Draft00",
    25498: "SecP256r1Kyber768Draft00",
}

# SSLv2 cipher kinds (3-byte code points); names as Zeek logs them.
SSL2_CIPHERS: dict[int, str] = {
    0x010080: "SSLv20_CK_RC4_128_WITH_MD5",
    0x020080: "SSLv20_CK_RC4_128_EXPORT40_WITH_MD5",
    0x030080: "SSLv20_CK_RC2_128_CBC_WITH_MD5",
    0x040080: "SSLv20_CK_RC2_128_CBC_EXPORT40_WITH_MD5",
    0x050080: "SSLv20_CK_IDEA_128_CBC_WITH_MD5",
    0x060040: "SSLv20_CK_DES_64_CBC_WITH_MD5",
    0x0700C0: "SSLv20_CK_DES_192_EDE3_CBC_WITH_MD5",
}


def cipher_name(code: int | None) -> str | None:
    if code is None:
        return None
    return CIPHER_SUITES.get(code) or SSL2_CIPHERS.get(code) or f"unknown 0x{code:04X}"


def alert_name(code: int) -> str:
    return ALERTS.get(code, f"unknown_{code}")


def group_name(code: int | None) -> str | None:
    if code is None:
        return None
    return GROUPS.get(code, f"unknown_{code}")
