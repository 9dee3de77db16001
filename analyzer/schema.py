"""Every column of every table: name, pandas dtype, and a one-line meaning (the single source of truth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

TS = "datetime64[ns, UTC]"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: str
    meaning: str


HANDSHAKES: tuple[Column, ...] = (
    # --- the stable interface (../shared/spec/interface.md), in this order
    Column("conn_id", "string", "stable id of the connection within the result; joins the other tables"),
    Column("ts", TS, "time of the connection's first packet"),
    Column("client_ip", "string", "client address (IPv4 or IPv6 text)"),
    Column("server_ip", "string", "server address"),
    Column("client_port", "Int64", "client TCP port"),
    Column("server_port", "Int64", "server TCP port"),
    Column("sni", "string", "server_name from the ClientHello (non-printable bytes as \\xNN)"),
    Column("version", "string", "negotiated version: SSL 2.0, SSL 3.0, TLS 1.0 ... TLS 1.3"),
    Column("cipher", "string", "negotiated cipher suite, IANA name"),
    Column("alpn", "string", "ALPN protocol the server selected (TLS 1.3: only with keys, it is encrypted)"),
    Column("outcome", "string", "established / failed / incomplete (failure-causes.md)"),
    Column("failure_cause", "string", "cause code from failure-causes.md, failed rows only"),
    Column("failure_detail", "string", "one sentence with the evidence (also explains incomplete rows)"),
    Column("confidence", "string", "certain / inferred, failed rows only"),
    Column("alert", "string", "first fatal alert's description, or 'encrypted'"),
    Column("alert_sender", "string", "client / server: who sent that alert"),
    Column("ja3", "string", "JA3 client fingerprint (MD5 hex)"),
    Column("ja4", "string", "JA4 client fingerprint"),
    Column("cert_sha256", "string", "SHA-256 hex of the server's leaf certificate"),
    # --- more
    Column(
        "starttls",
        "string",
        "cleartext protocol TLS was started from: smtp, imap, pop3, ftp, ldap, postgres, mysql, xmpp, rdp, irc, socks, http_connect; empty when TLS came first",
    ),
    Column("tunnel_target", "string", "host:port a SOCKS or HTTP CONNECT tunnel was opened to"),
    Column(
        "client_stack", "string", "client TLS stack guessed from JA4 (known fingerprints; '-like': same cipher list)"
    ),
    Column("offered_versions", "string", "versions the client offered, highest first (supported_versions or legacy)"),
    Column("offered_alpn", "string", "ALPN protocols the client offered, comma-separated"),
    Column("curve", "string", "key-exchange group (TLS 1.3 key_share or TLS 1.2 ServerKeyExchange)"),
    Column("resumed", "boolean", "session resumed (TLS 1.2 session id/ticket without Certificate, TLS 1.3 PSK)"),
    Column("hello_retry", "boolean", "the server sent a HelloRetryRequest"),
    Column("cert_request", "boolean", "the server asked for a client certificate (visible in TLS <= 1.2)"),
    Column("client_cert_sent", "boolean", "the client sent a non-empty Certificate (visible in TLS <= 1.2)"),
    Column("cert_chain_len", "Int64", "certificates in the server's Certificate message"),
    Column("history", "string", "handshake history, Zeek ssl_history letters (upper: client, lower: server)"),
    Column("rule", "string", "which diagnosis rule decided the outcome"),
    Column("tcp_close", "string", "who closed first and how: 'client FIN', 'server RST', or empty"),
    Column("handshake_ms", "Float64", "ClientHello to the end of the handshake (or to the failure)"),
    Column("duration_ms", "Float64", "first to last packet of the connection"),
    Column("client_packets", "Int64", "TCP segments client -> server"),
    Column("server_packets", "Int64", "TCP segments server -> client"),
    Column("client_bytes", "Int64", "TCP payload bytes client -> server"),
    Column("server_bytes", "Int64", "TCP payload bytes server -> client"),
    Column("first_frame", "Int64", "frame number of the connection's first packet in its capture file"),
    Column("capture_file", "string", "file the connection was first seen in"),
    Column(
        "validation_status",
        "string",
        "server chain verdict at capture time: ok, expired, not_yet_valid, "
        "hostname_mismatch, self_signed, untrusted_root, chain_incomplete, weak_key, weak_signature, invalid",
    ),
    Column("validation_detail", "string", "the verdict in one sentence, naming the certificate and the evidence"),
    Column("sni_matches_cert", "boolean", "the SNI (or the server IP when no SNI) is covered by the leaf's names"),
    Column("days_to_expiry", "Float64", "leaf notAfter minus the connection's time, in days (negative: expired)"),
    Column("strict_ok", "boolean", "the chain passes cryptography's strict RFC 5280 verifier as well"),
    Column(
        "ocsp_status", "string", "stapled OCSP response: good / revoked / unknown / invalid, '(stale)' when out of date"
    ),
    Column("client_cert_sha256", "string", "SHA-256 of the client's leaf certificate (mutual TLS, TLS <= 1.2)"),
    Column("client_validation_status", "string", "the client chain's verdict (against --client-ca when given)"),
    Column(
        "keylog_status",
        "string",
        "key-log decryption: decrypted / no_key / key_mismatch / unsupported_suite / pending; empty without a key log",
    ),
    Column(
        "remediation",
        "string",
        "what to change, and on which side, for this failure cause (analyzer/report/remediation.py)",
    ),
    Column("trust_source", "string", "the trust anchors a verdict used (store and version)"),
    Column("notes", "string", "parse problems, gaps, mid-connection start, chain warnings"),
)

ALERTS: tuple[Column, ...] = (
    Column("conn_id", "string", "connection (joins handshakes)"),
    Column("ts", TS, "time of the packet that completed the alert record"),
    Column("frame", "Int64", "frame number"),
    Column("sender", "string", "client / server"),
    Column("level", "string", "warning / fatal; empty when encrypted"),
    Column("description", "string", "alert description (RFC name) or 'encrypted'"),
    Column("code", "Int64", "numeric alert description"),
    Column("encrypted", "boolean", "the alert record was encrypted (content unknown without keys)"),
)

EVENTS: tuple[Column, ...] = (
    Column("conn_id", "string", "connection (joins handshakes)"),
    Column("ts", TS, "time of the event"),
    Column("frame", "Int64", "frame number (0: end of capture)"),
    Column("direction", "string", "client / server: who sent it"),
    Column(
        "event",
        "string",
        "syn, syn_ack, client_hello, server_hello, hello_retry_request, certificate, "
        "certificate_request, change_cipher_spec, encrypted_flight, finished, alert, application_data, fin, rst, gap",
    ),
    Column("detail", "string", "short description"),
    Column("dt_ms", "Float64", "milliseconds since the connection's first packet"),
)

CERTIFICATES: tuple[Column, ...] = (
    Column("cert_sha256", "string", "SHA-256 hex of the DER certificate (key)"),
    Column("cert_sha1", "string", "SHA-1 hex fingerprint (what Wireshark shows)"),
    Column("subject", "string", "subject, RFC 4514"),
    Column("subject_cn", "string", "subject common name"),
    Column("issuer", "string", "issuer, RFC 4514"),
    Column("issuer_cn", "string", "issuer common name"),
    Column("san_dns", "string", "DNS subjectAltNames, comma-separated"),
    Column("san_ip", "string", "IP subjectAltNames, comma-separated"),
    Column("serial", "string", "serial number, hex"),
    Column("not_before", TS, "start of validity"),
    Column("not_after", TS, "end of validity"),
    Column("days_to_expiry", "Float64", "not_after minus the first time the capture saw it, in days"),
    Column(
        "expiry",
        "string",
        "relative to the capture: expired, expired during the capture, within 7 days, "
        "within 30 days, not yet valid, or empty",
    ),
    Column("key_type", "string", "RSA, EC, Ed25519, ..."),
    Column("key_bits", "Int64", "key size in bits"),
    Column("curve", "string", "EC curve name"),
    Column("signature_algorithm", "string", "signature algorithm"),
    Column("signature_hash", "string", "hash of the signature (sha256, sha1, md5...)"),
    Column("is_ca", "boolean", "basicConstraints CA flag"),
    Column("path_length", "Int64", "basicConstraints pathLenConstraint"),
    Column("key_usage", "string", "keyUsage names, comma-separated (empty: extension absent)"),
    Column("extended_key_usage", "string", "extendedKeyUsage names, comma-separated (empty: extension absent)"),
    Column("self_signed", "boolean", "issued by itself and its signature verifies with its own key"),
    Column("ski", "string", "subjectKeyIdentifier, hex"),
    Column("aki", "string", "authorityKeyIdentifier, hex"),
    Column("ocsp_urls", "string", "AIA OCSP responder URLs"),
    Column("ca_issuers_urls", "string", "AIA caIssuers URLs (where the issuer could be fetched)"),
    Column("crl_urls", "string", "CRL distribution points"),
    Column("sct_count", "Int64", "embedded Signed Certificate Timestamps"),
    Column("der_bytes", "Int64", "size of the DER encoding"),
    Column("first_seen", TS, "first time a connection presented it"),
    Column("last_seen", TS, "last time a connection presented it"),
    Column("connections", "Int64", "connections that presented it"),
    Column("decode_error", "string", "why the DER (or its extensions) could not be decoded"),
)

CHAINS: tuple[Column, ...] = (
    Column("conn_id", "string", "connection (joins handshakes)"),
    Column("position", "Int64", "0 for the leaf, then in the order sent"),
    Column("cert_sha256", "string", "certificate (joins certificates)"),
    Column("sent_by", "string", "server / client"),
)

TABLES = {"handshakes": HANDSHAKES, "alerts": ALERTS, "events": EVENTS, "certificates": CERTIFICATES, "chains": CHAINS}


def frame(columns: tuple[Column, ...], data: dict[str, list[object]]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns`` in order and their dtypes; missing lists become nulls."""
    import pandas as pd  # imported here: the CLI's csv/json path never needs pandas

    n = len(next(iter(data.values()))) if data else 0
    out: dict[str, pd.Series] = {}
    for col in columns:
        values = data.get(col.name, [None] * n)
        if col.dtype == TS:
            out[col.name] = pd.Series(pd.to_datetime(pd.Series(values, dtype="Int64"), unit="ns", utc=True), dtype=TS)
        else:
            out[col.name] = pd.Series(values, dtype=col.dtype)
    return pd.DataFrame(out)


Columns = dict[str, list[object]]


def empty(columns: tuple[Column, ...]) -> Columns:
    return {c.name: [] for c in columns}
