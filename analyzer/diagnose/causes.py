"""The canonical outcome, failure-cause and confidence codes (../shared/spec/failure-causes.md), verbatim."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ESTABLISHED = "established"
    FAILED = "failed"
    INCOMPLETE = "incomplete"


class Cause(StrEnum):
    # before TLS
    TCP_REFUSED = "tcp_refused"
    TCP_TIMEOUT = "tcp_timeout"
    NO_CLIENT_HELLO = "no_client_hello"
    CLIENT_SENT_PLAINTEXT = "client_sent_plaintext"
    STARTTLS_REFUSED = "starttls_refused"
    # negotiation
    SERVER_NO_RESPONSE = "server_no_response"
    SERVER_RESET = "server_reset"
    SERVER_CLOSED = "server_closed"
    NON_TLS_SERVER = "non_tls_server"
    PROTOCOL_VERSION = "protocol_version"
    NO_SHARED_CIPHER = "no_shared_cipher"
    UNRECOGNIZED_NAME = "unrecognized_name"
    NO_APPLICATION_PROTOCOL = "no_application_protocol"
    INAPPROPRIATE_FALLBACK = "inappropriate_fallback"
    SERVER_REJECTED_HELLO = "server_rejected_hello"
    # server certificate rejected by the client
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    CERT_HOSTNAME_MISMATCH = "cert_hostname_mismatch"
    CERT_SELF_SIGNED = "cert_self_signed"
    CERT_UNTRUSTED_ROOT = "cert_untrusted_root"
    CERT_CHAIN_INCOMPLETE = "cert_chain_incomplete"
    CERT_REVOKED = "cert_revoked"
    CERT_WEAK = "cert_weak"
    CERT_INVALID = "cert_invalid"
    CERT_REJECTED_UNKNOWN = "cert_rejected_unknown"
    # mutual TLS
    CLIENT_CERT_MISSING = "client_cert_missing"
    CLIENT_CERT_REJECTED = "client_cert_rejected"
    # late
    CLIENT_ABORTED = "client_aborted"
    SERVER_ABORTED = "server_aborted"
    OTHER = "other"


class Confidence(StrEnum):
    CERTAIN = "certain"
    INFERRED = "inferred"
