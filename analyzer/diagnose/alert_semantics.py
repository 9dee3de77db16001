"""What each TLS stack sends (alert, encrypted or not in TLS 1.3, or nothing) for each certificate or negotiation problem."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Expected:
    """One stack's reaction to one problem.

    alert: the TLS alert description it sends (RFC 8446 name, e.g. "certificate_expired"), or None when it
    sends no fatal alert and just closes (a close_notify after a completed handshake counts as no alert).
    encrypted_in_tls13: whether that alert travels encrypted in TLS 1.3 (None when there is no alert).
    source: where this comes from: "owner/repo path (symbol)" of the stack's code and/or "samples/<file>".
    certain: False when the entry rests on reading code paths that depend on configuration or version, on
    documentation, or on inference, and was not observed in a capture.
    """

    alert: str | None
    encrypted_in_tls13: bool | None
    source: str
    certain: bool = True


STACKS: tuple[str, ...] = (
    "openssl",
    "curl",
    "node",
    "boringssl",
    "go",
    "java",
    "gnutls",
    "nss",
    "schannel",
    "rustls",
)

# Problems detected by the client on the server's certificate (the client sends the alert) ...
CERT_PROBLEMS: tuple[str, ...] = (
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "untrusted_root",
    "chain_incomplete",
    "revoked",
    "weak_key",
    "weak_signature",
    "invalid",
)
# ... and problems detected by the server (the server sends the alert).
NEGOTIATION_PROBLEMS: tuple[str, ...] = (
    "protocol_version",
    "no_shared_cipher",
    "unrecognized_name",
    "no_application_protocol",
    "client_cert_missing",
    "client_cert_rejected",
)
PROBLEMS: tuple[str, ...] = CERT_PROBLEMS + NEGOTIATION_PROBLEMS

# failure_cause codes (spec/failure-causes.md) -> the problem rows they cover.
CAUSE_PROBLEMS: dict[str, tuple[str, ...]] = {
    "cert_expired": ("expired",),
    "cert_not_yet_valid": ("not_yet_valid",),
    "cert_hostname_mismatch": ("hostname_mismatch",),
    "cert_self_signed": ("self_signed",),
    "cert_untrusted_root": ("untrusted_root",),
    "cert_chain_incomplete": ("chain_incomplete",),
    "cert_revoked": ("revoked",),
    "cert_weak": ("weak_key", "weak_signature"),
    "cert_invalid": ("invalid",),
    "protocol_version": ("protocol_version",),
    "no_shared_cipher": ("no_shared_cipher",),
    "unrecognized_name": ("unrecognized_name",),
    "no_application_protocol": ("no_application_protocol",),
    "client_cert_missing": ("client_cert_missing",),
    "client_cert_rejected": ("client_cert_rejected",),
}

ALERT_CODES: dict[str, int] = {
    "close_notify": 0,
    "unexpected_message": 10,
    "bad_record_mac": 20,
    "record_overflow": 22,
    "handshake_failure": 40,
    "bad_certificate": 42,
    "unsupported_certificate": 43,
    "certificate_revoked": 44,
    "certificate_expired": 45,
    "certificate_unknown": 46,
    "illegal_parameter": 47,
    "unknown_ca": 48,
    "access_denied": 49,
    "decode_error": 50,
    "decrypt_error": 51,
    "protocol_version": 70,
    "insufficient_security": 71,
    "internal_error": 80,
    "inappropriate_fallback": 86,
    "user_canceled": 90,
    "missing_extension": 109,
    "unsupported_extension": 110,
    "unrecognized_name": 112,
    "bad_certificate_status_response": 113,
    "unknown_psk_identity": 115,
    "certificate_required": 116,
    "no_application_protocol": 120,
}
_ALERT_NAMES: dict[int, str] = {code: name for name, code in ALERT_CODES.items()}

# --- sources ------------------------------------------------------------------------------------------------
_OSSL = "openssl/openssl ssl/statem/statem_lib.c (x509table, ssl_x509err2alert) via statem_clnt.c"
_OSSL_SRV = "openssl/openssl ssl/statem/statem_srvr.c"
_OSSL_T1 = "openssl/openssl ssl/t1_enc.c tls1_alert_code (certificate_required -> handshake_failure before TLS 1.3)"
_BSSL = "google/boringssl ssl/ssl_x509.cc + ssl_lib.cc (SSL_alert_from_verify_result)"
_BSSL_KEYS = "tls13_client.cc do_read_server_hello installs the client handshake write key at once"
_CHROME = (
    "Chromium's own verifier through SSL_set_custom_verify: BoringSSL handshake.cc default alert "
    "SSL_AD_CERTIFICATE_UNKNOWN (servers log 'alert certificate unknown' for Chrome)"
)
_GO_C = "golang/go src/crypto/tls/handshake_client.go verifyServerCertificate (Verify error -> alertBadCertificate)"
_GO_S = "golang/go src/crypto/tls/handshake_server.go"
_JAVA = "openjdk/jdk src/java.base/share/classes/sun/security/ssl/CertificateMessage.java"
_JAVA_12 = _JAVA + " T12CertificateConsumer.getCertificateAlert"
_JAVA_13 = _JAVA + " T13CertificateConsumer.getCertificateAlert (only REVOKED is specific)"
_GNUTLS = (
    "gnutls/gnutls lib/alert.c gnutls_error_to_alert (GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR -> "
    "GNUTLS_A_BAD_CERTIFICATE; sent by apps that call gnutls_alert_send_appropriate, as gnutls-cli does)"
)
_NSS = "nss-dev/nss lib/ssl/ssl3con.c ssl3_SendAlertForCertError"
_NSS_KEYS = "tls13con.c installs the client handshake write key only in tls13_SendClientSecondRound"
_RUSTLS = "rustls/rustls rustls/src/error.rs (impl From<CertificateError> for AlertDescription)"
_RUSTLS_S = "rustls/rustls rustls/src/server/"
_NET = (
    "dotnet/runtime src/libraries/System.Net.Security/.../SslStream.Protocol.cs CreateFatalHandshakeAlertToken/"
    "GetAlertMessageFromChain (SslStream over SChannel, alert applied after the handshake)"
)
_NODE = (
    "nodejs/node src/crypto/crypto_tls.cc TLSWrap::SetVerifyMode (client: SSL_VERIFY_NONE, the certificate "
    "is checked in JavaScript after the handshake and the socket destroyed)"
)


def _e(alert: str | None, encrypted: bool | None, source: str, certain: bool = True) -> Expected:
    return Expected(alert, encrypted, source, certain)


# --- OpenSSL 3.x (also s_client, Python ssl, and the default for curl) -----------------------------------------
# Client alerts are in clear in TLS 1.3: the OpenSSL client has not switched its write key when it rejects the
# server's Certificate (seen in every OpenSSL/Python/curl sample).
_OPENSSL: dict[str, Expected] = {
    "expired": _e("certificate_expired", False, "samples/cert-expired.pcap; " + _OSSL + " X509_V_ERR_CERT_HAS_EXPIRED"),
    "not_yet_valid": _e(
        "bad_certificate", False, "samples/cert-notyetvalid.pcap; " + _OSSL + " X509_V_ERR_CERT_NOT_YET_VALID"
    ),
    "hostname_mismatch": _e(
        "bad_certificate",
        False,
        "samples/cert-wronghost.pcap (s_client -verify_hostname, Python); " + _OSSL + " X509_V_ERR_HOSTNAME_MISMATCH",
    ),
    "self_signed": _e(
        "unknown_ca", False, "samples/cert-selfsigned.pcapng; " + _OSSL + " X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"
    ),
    "untrusted_root": _e(
        "unknown_ca",
        False,
        "samples/cert-untrusted-root.pcap; "
        + _OSSL
        + " X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN / UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    ),
    "chain_incomplete": _e(
        "unknown_ca",
        False,
        "samples/cert-missing-intermediate.pcap; "
        + _OSSL
        + " X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY / UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    ),
    "revoked": _e(
        "certificate_revoked",
        False,
        _OSSL + " X509_V_ERR_CERT_REVOKED (only when the application enables "
        "CRL checking; by default OpenSSL checks no revocation and accepts: s_client -status and Python accept a "
        "revoked staple, samples/ocsp-stapled-good-revoked.pcap)",
    ),
    "weak_key": _e(
        "bad_certificate",
        False,
        "samples/cert-weak-rsa1024.pcapng (Debian SECLEVEL 2); "
        + _OSSL
        + " X509_V_ERR_EE_KEY_TOO_SMALL / CA_KEY_TOO_SMALL",
    ),
    "weak_signature": _e(
        "bad_certificate",
        False,
        "samples/cert-sha1-leaf.pcap; " + _OSSL + " X509_V_ERR_CA_MD_TOO_WEAK (SHA-1 is below security level 1 in 3.x)",
    ),
    "invalid": _e("unsupported_certificate", False, _OSSL + " X509_V_ERR_INVALID_PURPOSE (wrong EKU)"),
    "protocol_version": _e(
        "protocol_version",
        False,
        "samples/protocol-version.pcap; "
        + _OSSL_SRV
        + " tls_early_post_process_client_hello (ssl_choose_server_version failure)",
    ),
    "no_shared_cipher": _e(
        "handshake_failure",
        False,
        "samples/no-shared-cipher.pcapng (cipher and group); " + _OSSL_SRV + " SSL_R_NO_SHARED_CIPHER",
    ),
    "unrecognized_name": _e(
        "unrecognized_name",
        False,
        "samples/unrecognized-name.pcap; openssl/openssl ssl/statem/"
        "extensions.c final_server_name (default alert when the servername callback returns "
        "SSL_TLSEXT_ERR_ALERT_FATAL; without such a callback the default certificate is served)",
    ),
    "no_application_protocol": _e(
        "no_application_protocol",
        False,
        "samples/no-application-protocol.pcap (node, an "
        "OpenSSL server); " + _OSSL_SRV + " tls_handle_alpn (callback returns "
        "SSL_TLSEXT_ERR_ALERT_FATAL; SSL_TLSEXT_ERR_NOACK continues without ALPN)",
    ),
    "client_cert_missing": _e(
        "handshake_failure",
        True,
        "samples/mtls-client-cert-missing.pcap; "
        + _OSSL_SRV
        + " tls_process_client_certificate (SSL_VERIFY_FAIL_IF_NO_PEER_CERT); "
        + _OSSL_T1,
    ),
    "client_cert_rejected": _e(
        "unknown_ca",
        True,
        "samples/mtls-client-cert-rejected.pcapng (client certificate from "
        "an unknown CA); " + _OSSL_SRV + " -> ssl_x509err2alert",
    ),
}

_CURL: dict[str, Expected] = {
    **_OPENSSL,
    "hostname_mismatch": _e(
        None,
        None,
        "samples/cert-wronghost.pcap (curl 7.88.1, OpenSSL backend: curl checks the "
        "name itself after the handshake and sends close_notify); curl/curl lib/vtls/openssl.c "
        "ossl_verifyhost",
    ),
    "revoked": _e(
        None,
        None,
        "samples/cert-revoked.pcap, samples/ocsp-stapled-good-revoked.pcap (curl --cert-status checks the "
        "stapled OCSP response after the handshake, then close_notify)",
    ),
}

_NODE_CLIENT = _e(None, None, "samples/cert-*.pcap (node 20.20: no client alert in TLS 1.2 or 1.3); " + _NODE)
_NODE_CLIENT_UNSEEN = _e(
    None, None, _NODE + "; not in the samples (node accepts RSA-1024 and a revoked staple)", certain=False
)
_NODE_D: dict[str, Expected] = {
    **_OPENSSL,
    **{p: _NODE_CLIENT for p in CERT_PROBLEMS},
    "revoked": _NODE_CLIENT_UNSEEN,
    "weak_key": _NODE_CLIENT_UNSEEN,
    "weak_signature": _e(
        None, None, "samples/cert-sha1-leaf.pcap (node 20.20 refuses a SHA-1 leaf, no alert); " + _NODE
    ),
    "invalid": _NODE_CLIENT_UNSEEN,
    "no_application_protocol": _e(
        "no_application_protocol", False, "samples/no-application-protocol.pcap (node 20.20 server, ALPN mismatch)"
    ),
    "client_cert_missing": _e(
        "handshake_failure",
        True,
        "nodejs/node src/crypto/crypto_tls.cc TLSWrap::SetVerifyMode "
        "(requestCert+rejectUnauthorized -> SSL_VERIFY_FAIL_IF_NO_PEER_CERT); " + _OSSL_T1,
    ),
    "client_cert_rejected": _e(
        None,
        None,
        "nodejs/node src/crypto/crypto_tls.cc ('Always allow a connection. We'll "
        "reject in javascript.'): the server completes the handshake, then destroys the socket",
        certain=False,
    ),
}

# --- BoringSSL (its own X509 verifier; Chrome and Android use their own verifiers, see ALSO) --------------------
_BORINGSSL: dict[str, Expected] = {
    "expired": _e("certificate_expired", True, _BSSL + " X509_V_ERR_CERT_HAS_EXPIRED; " + _BSSL_KEYS),
    "not_yet_valid": _e("certificate_expired", True, _BSSL + " X509_V_ERR_CERT_NOT_YET_VALID (unlike OpenSSL)"),
    "hostname_mismatch": _e("bad_certificate", True, _BSSL + " X509_V_ERR_HOSTNAME_MISMATCH"),
    "self_signed": _e("unknown_ca", True, _BSSL + " X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT"),
    "untrusted_root": _e(
        "unknown_ca", True, _BSSL + " X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN / UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
    ),
    "chain_incomplete": _e("unknown_ca", True, _BSSL + " X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
    "revoked": _e("certificate_revoked", True, _BSSL + " X509_V_ERR_CERT_REVOKED (CRL checking must be enabled)"),
    "weak_key": _e(
        "certificate_unknown", True, _BSSL + " (no key-size error in its verifier; default alert)", certain=False
    ),
    "weak_signature": _e(
        "decrypt_error",
        True,
        _BSSL + " X509_V_ERR_CERT_SIGNATURE_FAILURE for an unsupported signature algorithm (MD5)",
        certain=False,
    ),
    "invalid": _e("unsupported_certificate", True, _BSSL + " X509_V_ERR_INVALID_PURPOSE"),
    "protocol_version": _e(
        "protocol_version", False, "google/boringssl ssl/handshake_server.cc (version negotiation)", certain=False
    ),
    "no_shared_cipher": _e(
        "handshake_failure", False, "google/boringssl ssl/handshake_server.cc (SSL_R_NO_SHARED_CIPHER)", certain=False
    ),
    "unrecognized_name": _e(
        "unrecognized_name",
        False,
        "google/boringssl ssl/extensions.cc servername callback (OpenSSL-compatible SSL_TLSEXT_ERR_ALERT_FATAL)",
        certain=False,
    ),
    "no_application_protocol": _e(
        "no_application_protocol",
        False,
        "google/boringssl ssl/extensions.cc ssl_negotiate_alpn (SSL_TLSEXT_ERR_ALERT_FATAL)",
        certain=False,
    ),
    "client_cert_missing": _e(
        "handshake_failure",
        True,
        "google/boringssl ssl/handshake_server.cc "
        "(SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE -> SSL_AD_HANDSHAKE_FAILURE)",
    ),
    "client_cert_rejected": _e("unknown_ca", True, _BSSL + " (client certificate from an unknown CA)"),
}

# --- Go crypto/tls ---------------------------------------------------------------------------------------------
_GO_BAD = "bad_certificate"
_GO: dict[str, Expected] = {
    "expired": _e(_GO_BAD, True, "samples/cert-expired.pcap (Go 1.19); " + _GO_C),
    "not_yet_valid": _e(_GO_BAD, True, "samples/cert-notyetvalid.pcap; " + _GO_C),
    "hostname_mismatch": _e(_GO_BAD, True, "samples/cert-wronghost.pcap; " + _GO_C),
    "self_signed": _e(_GO_BAD, True, "samples/cert-selfsigned.pcapng; " + _GO_C),
    "untrusted_root": _e(_GO_BAD, True, "samples/cert-untrusted-root.pcap; " + _GO_C),
    "chain_incomplete": _e(_GO_BAD, True, "samples/cert-missing-intermediate.pcap; " + _GO_C),
    "revoked": _e(
        _GO_BAD,
        True,
        _GO_C + " (Go checks no revocation and accepts a revoked staple, samples/ocsp-stapled-good-revoked.pcap; "
        "a VerifyPeerCertificate/VerifyConnection callback that refuses also gets alertBadCertificate)",
    ),
    "weak_key": _e(
        _GO_BAD,
        True,
        _GO_C + "; Go accepts RSA-1024 (samples/cert-weak-rsa1024.pcapng); only a chain "
        "signature that fails verification is refused",
        certain=False,
    ),
    "weak_signature": _e(
        _GO_BAD,
        True,
        "samples/cert-sha1-leaf.pcap (Go 1.19; GODEBUG=x509sha1=1 accepts); "
        + _GO_C
        + " (crypto/x509 InsecureAlgorithmError for MD5/SHA-1 signatures)",
    ),
    "invalid": _e(_GO_BAD, True, _GO_C + " (crypto/x509 IncompatibleUsage / NotAuthorizedToSign)"),
    "protocol_version": _e("protocol_version", False, _GO_S + " ('client offered only unsupported versions')"),
    "no_shared_cipher": _e(
        "handshake_failure",
        False,
        _GO_S + " + handshake_server_tls13.go ('no cipher suite supported by both client and server', no common group)",
    ),
    "unrecognized_name": _e(
        "internal_error",
        False,
        _GO_S + " (a GetCertificate error -> alertInternalError; "
        "alertUnrecognizedName only for errNoCertificates; with Certificates set, the first one "
        "is served)",
    ),
    "no_application_protocol": _e("no_application_protocol", False, _GO_S + " negotiateALPN (Go >= 1.17)"),
    "client_cert_missing": _e(
        "bad_certificate",
        True,
        "samples/mtls-client-cert-missing.pcap (Go 1.19 server, TLS 1.2 and 1.3); " + _GO_S + " processCertsFromClient",
    ),
    "client_cert_rejected": _e(
        "bad_certificate", True, _GO_S + " processCertsFromClient (Go 1.19: any Verify error -> alertBadCertificate)"
    ),
}

# --- Java JSSE (SunJSSE, JDK 11+) ----------------------------------------------------------------------------
_JAVA_CU_SEEN = "certificate_unknown"
_JAVA_D: dict[str, Expected] = {
    "expired": _e(
        "certificate_expired", True, "samples/cert-expired.pcap (Java 17, TLS 1.2); " + _JAVA_12 + " EXPIRED"
    ),
    "not_yet_valid": _e(
        "bad_certificate", True, "samples/cert-notyetvalid.pcap (TLS 1.2); " + _JAVA_12 + " NOT_YET_VALID"
    ),
    "hostname_mismatch": _e(_JAVA_CU_SEEN, True, "samples/cert-wronghost.pcap; " + _JAVA_12 + " (default)"),
    "self_signed": _e(_JAVA_CU_SEEN, True, "samples/cert-selfsigned.pcapng; " + _JAVA_12 + " (default)"),
    "untrusted_root": _e(_JAVA_CU_SEEN, True, "samples/cert-untrusted-root.pcap; " + _JAVA_12 + " (default)"),
    "chain_incomplete": _e(_JAVA_CU_SEEN, True, "samples/cert-missing-intermediate.pcap; " + _JAVA_12 + " (default)"),
    "revoked": _e(
        "certificate_revoked",
        True,
        _JAVA_12 + " REVOKED (bad_certificate_status_response when stapling "
        "is active; revocation checking is off by default: Java 17 accepts a revoked staple, "
        "samples/ocsp-stapled-good-revoked.pcap)",
    ),
    "weak_key": _e(
        "unsupported_certificate",
        True,
        _JAVA_12 + " ALGORITHM_CONSTRAINED (jdk.certpath.disabledAlgorithms; "
        "RSA-1024 is accepted, samples/cert-weak-rsa1024.pcapng)",
    ),
    "weak_signature": _e(
        "unsupported_certificate",
        True,
        _JAVA_12 + " ALGORITHM_CONSTRAINED (MD5; SHA-1 only under jdkCA/TLSServer constraints: Java 17 accepts a "
        "SHA-1 leaf from a private CA, samples/cert-sha1-leaf.pcap)",
    ),
    "invalid": _e(
        "certificate_unknown", True, _JAVA_12 + " (EKU/basic-constraint failures carry no BasicReason)", certain=False
    ),
    "protocol_version": _e(
        "protocol_version",
        False,
        "openjdk/jdk .../sun/security/ssl/ClientHello.java ('Client "
        "requested protocol ... is not enabled or supported in server context')",
    ),
    "no_shared_cipher": _e(
        "handshake_failure", False, "openjdk/jdk .../sun/security/ssl/ServerHello.java ('no cipher suites in common')"
    ),
    "unrecognized_name": _e(
        "unrecognized_name",
        False,
        "openjdk/jdk .../sun/security/ssl/ServerNameExtension.java (only when SNIMatchers are configured)",
    ),
    "no_application_protocol": _e(
        "no_application_protocol",
        False,
        "openjdk/jdk .../sun/security/ssl/AlpnExtension.java ('No matching application layer protocol values')",
    ),
    "client_cert_missing": _e(
        "bad_certificate",
        True,
        _JAVA + " T12/T13CertificateConsumer onConsumeCertificate "
        "(server side: 'Empty client certificate chain', TLS 1.2 and 1.3)",
    ),
    "client_cert_rejected": _e("certificate_unknown", True, _JAVA + " checkClientCerts (Alert.CERTIFICATE_UNKNOWN)"),
}

# --- GnuTLS --------------------------------------------------------------------------------------------------
_GNUTLS_D: dict[str, Expected] = {
    "expired": _e("bad_certificate", True, "samples/cert-expired.pcap (gnutls-cli 3.7.9); " + _GNUTLS),
    "not_yet_valid": _e("bad_certificate", True, "samples/cert-notyetvalid.pcap; " + _GNUTLS),
    "hostname_mismatch": _e("bad_certificate", True, "samples/cert-wronghost.pcap; " + _GNUTLS),
    "self_signed": _e("bad_certificate", True, "samples/cert-selfsigned.pcapng; " + _GNUTLS),
    "untrusted_root": _e("bad_certificate", True, "samples/cert-untrusted-root.pcap; " + _GNUTLS),
    "chain_incomplete": _e("bad_certificate", True, "samples/cert-missing-intermediate.pcap; " + _GNUTLS),
    "revoked": _e(
        "bad_certificate",
        True,
        "samples/cert-revoked.pcap, samples/ocsp-stapled-good-revoked.pcap (stapled OCSP says revoked); " + _GNUTLS,
    ),
    "weak_key": _e(
        "bad_certificate",
        True,
        _GNUTLS + "; GnuTLS 3.7 accepts RSA-1024 (samples/cert-weak-rsa1024.pcapng), "
        "a stricter verification profile -> GNUTLS_CERT_INSECURE_ALGORITHM",
    ),
    "weak_signature": _e(
        "bad_certificate", True, "samples/cert-sha1-leaf.pcap; " + _GNUTLS + " (GNUTLS_CERT_INSECURE_ALGORITHM)"
    ),
    "invalid": _e("bad_certificate", True, _GNUTLS + " (GNUTLS_CERT_PURPOSE_MISMATCH / SIGNER_CONSTRAINTS_FAILURE)"),
    "protocol_version": _e(
        "protocol_version", False, "gnutls/gnutls lib/alert.c (GNUTLS_E_UNSUPPORTED_VERSION_PACKET)"
    ),
    "no_shared_cipher": _e(
        "handshake_failure",
        False,
        "gnutls/gnutls lib/alert.c (GNUTLS_E_NO_CIPHER_SUITES, "
        "UNKNOWN_CIPHER_SUITE, NO_COMMON_KEY_SHARE, INSUFFICIENT_CREDENTIALS)",
    ),
    "unrecognized_name": _e(
        "unrecognized_name",
        False,
        "gnutls/gnutls lib/alert.c (GNUTLS_E_UNRECOGNIZED_NAME, raised by the application's hello callback)",
    ),
    "no_application_protocol": _e(
        "no_application_protocol",
        False,
        "samples/no-application-protocol.pcap (gnutls-serv --alpn-fatal); lib/alert.c GNUTLS_E_NO_APPLICATION_PROTOCOL",
    ),
    "client_cert_missing": _e(
        "decode_error",
        True,
        "gnutls/gnutls lib/handshake.c _gnutls_recv_client_certificate "
        "(TLS 1.2: GNUTLS_E_NO_CERTIFICATE_FOUND) + lib/alert.c (-> GNUTLS_A_DECODE_ERROR)",
        certain=False,
    ),
    "client_cert_rejected": _e(
        "bad_certificate",
        True,
        _GNUTLS + " (server verifying in the handshake with gnutls_session_set_verify_cert)",
        certain=False,
    ),
}

# --- NSS (Firefox, tstclnt) -----------------------------------------------------------------------------------
# Client certificate alerts are in clear in TLS 1.3 (like OpenSSL): NSS sets its handshake write key only after
# the server is authenticated (tls13con.c).
_NSS_D: dict[str, Expected] = {
    "expired": _e("certificate_expired", False, _NSS + " SEC_ERROR_EXPIRED_CERTIFICATE; " + _NSS_KEYS),
    "not_yet_valid": _e(
        "certificate_expired",
        False,
        _NSS + " (NSS's own verifier reports not-yet-valid as SEC_ERROR_EXPIRED_CERTIFICATE)",
        certain=False,
    ),
    "hostname_mismatch": _e("bad_certificate", False, _NSS + " (SSL_ERROR_BAD_CERT_DOMAIN falls to the default)"),
    "self_signed": _e("unknown_ca", False, _NSS + " SEC_ERROR_UNKNOWN_ISSUER", certain=False),
    "untrusted_root": _e("unknown_ca", False, _NSS + " SEC_ERROR_UNKNOWN_ISSUER / SEC_ERROR_UNTRUSTED_ISSUER"),
    "chain_incomplete": _e(
        "unknown_ca",
        False,
        _NSS + " SEC_ERROR_UNKNOWN_ISSUER (Firefox may complete the chain from its intermediate preload and accept)",
    ),
    "revoked": _e("certificate_revoked", False, _NSS + " SEC_ERROR_REVOKED_CERTIFICATE"),
    "weak_key": _e(
        "bad_certificate", False, _NSS + " (default; Firefox: MOZILLA_PKIX_ERROR_INADEQUATE_KEY_SIZE)", certain=False
    ),
    "weak_signature": _e(
        "bad_certificate", False, _NSS + " (SEC_ERROR_CERT_SIGNATURE_ALGORITHM_DISABLED -> default)", certain=False
    ),
    "invalid": _e("certificate_unknown", False, _NSS + " SEC_ERROR_INADEQUATE_KEY_USAGE / INADEQUATE_CERT_TYPE"),
    "protocol_version": _e(
        "protocol_version",
        False,
        "nss-dev/nss lib/ssl/ssl3con.c ssl3_HandleClientHello (SSL_ERROR_UNSUPPORTED_VERSION)",
        certain=False,
    ),
    "no_shared_cipher": _e(
        "handshake_failure", False, "nss-dev/nss lib/ssl/ssl3con.c (SSL_ERROR_NO_CYPHER_OVERLAP)", certain=False
    ),
    "unrecognized_name": _e(
        "unrecognized_name",
        False,
        "nss-dev/nss lib/ssl/ssl3con.c ssl3_ServerCallSNICallback (SSL_SNI_SEND_ALERT)",
        certain=False,
    ),
    "no_application_protocol": _e(
        "no_application_protocol", False, "nss-dev/nss lib/ssl/ssl3ext.c ssl3_SelectAppProtocol", certain=False
    ),
    "client_cert_missing": _e(
        "bad_certificate",
        True,
        "nss-dev/nss lib/ssl/ssl3con.c ssl3_HandleNoCertificate "
        "(bad_certificate before TLS 1.3, certificate_required in 1.3)",
    ),
    "client_cert_rejected": _e("unknown_ca", True, _NSS + " (client certificate from an unknown issuer)"),
}

# --- SChannel (Windows). What goes on the wire depends on the application: SChannel reports the verification
# error to the caller, which sends (or not) an alert token. Rows below are .NET SslStream's choices. -------------
_SCH_NOTE = "; native SChannel callers often just close (steffengy/schannel-rs#22, microsoft/msquic#255)"
_SCHANNEL: dict[str, Expected] = {
    "expired": _e("certificate_expired", True, _NET + " NotTimeValid" + _SCH_NOTE, certain=False),
    "not_yet_valid": _e("certificate_expired", True, _NET + " NotTimeValid" + _SCH_NOTE, certain=False),
    "hostname_mismatch": _e(
        "bad_certificate", True, _NET + " RemoteCertificateNameMismatch" + _SCH_NOTE, certain=False
    ),
    "self_signed": _e("unknown_ca", True, _NET + " UntrustedRoot" + _SCH_NOTE, certain=False),
    "untrusted_root": _e("unknown_ca", True, _NET + " UntrustedRoot" + _SCH_NOTE, certain=False),
    "chain_incomplete": _e("unknown_ca", True, _NET + " PartialChain" + _SCH_NOTE, certain=False),
    "revoked": _e("certificate_revoked", True, _NET + " Revoked/OfflineRevocation" + _SCH_NOTE, certain=False),
    "weak_key": _e(
        "bad_certificate", True, _NET + " (weak-crypto policy -> NotSignatureValid)" + _SCH_NOTE, certain=False
    ),
    "weak_signature": _e("bad_certificate", True, _NET + " NotSignatureValid" + _SCH_NOTE, certain=False),
    "invalid": _e("bad_certificate", True, _NET + " NotValidForUsage/InvalidExtension" + _SCH_NOTE, certain=False),
    "protocol_version": _e(
        "protocol_version",
        False,
        "learn.microsoft.com Schannel event 36888 ('fatal error code is 70, SChannel error state 105')",
        certain=False,
    ),
    "no_shared_cipher": _e(
        "handshake_failure", False, "learn.microsoft.com Schannel events 36874/36888 (fatal alert 40)", certain=False
    ),
    "unrecognized_name": _e(None, None, "not documented; HTTP.sys serves a fallback binding or resets", certain=False),
    "no_application_protocol": _e(
        "no_application_protocol", False, "RFC 7301 behaviour assumed; not documented", certain=False
    ),
    "client_cert_missing": _e(
        None, None, "IIS/HTTP.sys complete the handshake and refuse at HTTP level (403.7)", certain=False
    ),
    "client_cert_rejected": _e(
        None, None, "IIS/HTTP.sys complete the handshake and refuse at HTTP level (403.16)", certain=False
    ),
}

# --- rustls (with webpki) ------------------------------------------------------------------------------------
_RUSTLS_D: dict[str, Expected] = {
    "expired": _e(
        "certificate_expired",
        True,
        _RUSTLS + " Expired; rustls/src/tls13/key_schedule.rs sets the client handshake encrypter at ServerHello",
    ),
    "not_yet_valid": _e("certificate_expired", True, _RUSTLS + " NotValidYet"),
    "hostname_mismatch": _e("bad_certificate", True, _RUSTLS + " NotValidForName"),
    "self_signed": _e("unknown_ca", True, _RUSTLS + " UnknownIssuer"),
    "untrusted_root": _e("unknown_ca", True, _RUSTLS + " UnknownIssuer"),
    "chain_incomplete": _e("unknown_ca", True, _RUSTLS + " UnknownIssuer (webpki never fetches intermediates)"),
    "revoked": _e("certificate_revoked", True, _RUSTLS + " Revoked (only with CRLs configured)"),
    "weak_key": _e(
        "decrypt_error", True, _RUSTLS + " BadSignature (webpki's RSA algorithms need >= 2048 bits)", certain=False
    ),
    "weak_signature": _e("decrypt_error", True, _RUSTLS + " UnsupportedSignatureAlgorithm (no MD5/SHA-1 in webpki)"),
    "invalid": _e("unsupported_certificate", True, _RUSTLS + " InvalidPurpose (EKU)"),
    "protocol_version": _e(
        "protocol_version",
        False,
        _RUSTLS_S + "hs.rs (PeerIncompatible::Tls12NotOfferedOrEnabled / SupportedVersionsExtensionRequired)",
    ),
    "no_shared_cipher": _e(
        "handshake_failure",
        False,
        _RUSTLS_S + "hs.rs (PeerIncompatible::NoCipherSuitesInCommon, NoKxGroupsInCommon)",
        certain=False,
    ),
    "unrecognized_name": _e(
        "access_denied",
        False,
        _RUSTLS_S + "hs.rs ('no server certificate chain resolved' -> AlertDescription::AccessDenied)",
    ),
    "no_application_protocol": _e(
        "no_application_protocol", False, _RUSTLS_S + "hs.rs (Error::NoApplicationProtocol)", certain=False
    ),
    "client_cert_missing": _e(
        "certificate_required",
        True,
        _RUSTLS_S + "tls12.rs and tls13.rs ExpectCertificate (AlertDescription::CertificateRequired even in TLS 1.2)",
    ),
    "client_cert_rejected": _e(
        "unknown_ca",
        True,
        _RUSTLS_S + " verify_client_cert error -> send_cert_verify_error_alert; " + _RUSTLS + " UnknownIssuer",
    ),
}

TABLE: dict[str, dict[str, Expected]] = {
    "openssl": _OPENSSL,
    "curl": _CURL,
    "node": _NODE_D,
    "boringssl": _BORINGSSL,
    "go": _GO,
    "java": _JAVA_D,
    "gnutls": _GNUTLS_D,
    "nss": _NSS_D,
    "schannel": _SCHANNEL,
    "rustls": _RUSTLS_D,
}

# What differs in TLS 1.3 (the TABLE entry holds the TLS 1.2 behaviour).
_CERT_REQUIRED = "certificate_required"
TLS13: dict[str, dict[str, Expected]] = {
    "openssl": {
        "client_cert_missing": _e(
            _CERT_REQUIRED, True, "samples/mtls-client-cert-missing.pcap; " + _OSSL_SRV + " SSL_AD_CERTIFICATE_REQUIRED"
        )
    },
    "curl": {"client_cert_missing": _e(_CERT_REQUIRED, True, _OSSL_SRV + " SSL_AD_CERTIFICATE_REQUIRED")},
    "node": {"client_cert_missing": _e(_CERT_REQUIRED, True, _OSSL_SRV + " SSL_AD_CERTIFICATE_REQUIRED")},
    "boringssl": {
        "client_cert_missing": _e(
            _CERT_REQUIRED,
            True,
            "google/boringssl ssl/tls13_both.cc tls13_process_certificate (SSL_AD_CERTIFICATE_REQUIRED)",
        )
    },
    "java": {
        "expired": _e(
            "certificate_unknown", True, "samples/cert-expired.pcap (Java 17, TLS 1.3, encrypted); " + _JAVA_13
        ),
        "not_yet_valid": _e("certificate_unknown", True, "samples/cert-notyetvalid.pcap (TLS 1.3); " + _JAVA_13),
        "weak_key": _e("certificate_unknown", True, _JAVA_13),
        "weak_signature": _e("certificate_unknown", True, _JAVA_13),
    },
    "gnutls": {
        "client_cert_missing": _e(
            _CERT_REQUIRED,
            True,
            "gnutls/gnutls lib/tls13/certificate.c (GNUTLS_E_CERTIFICATE_REQUIRED -> GNUTLS_A_CERTIFICATE_REQUIRED)",
        )
    },
    "nss": {"client_cert_missing": _e(_CERT_REQUIRED, True, "nss-dev/nss lib/ssl/ssl3con.c ssl3_HandleNoCertificate")},
}

# Other alerts the same stack is known to send for the same problem (other versions, configurations or
# applications); consistent() accepts them.
ALSO: dict[str, dict[str, tuple[Expected, ...]]] = {
    "openssl": {
        "protocol_version": (
            _e(
                "internal_error",
                False,
                "samples/protocol-version.pcap (TLS 1.0-only client against a default Debian OpenSSL 3.0 server)",
            ),
        ),
        "revoked": (
            _e(
                "bad_certificate_status_response",
                False,
                "openssl/openssl ssl/statem/statem_clnt.c (OCSP status callback returning 0)",
                certain=False,
            ),
        ),
        "invalid": (
            _e("unknown_ca", False, _OSSL + " X509_V_ERR_INVALID_CA / PATH_LENGTH_EXCEEDED"),
            _e("certificate_unknown", False, _OSSL + " (default, e.g. X509_V_ERR_KEYUSAGE_NO_CERTSIGN)"),
        ),
    },
    "boringssl": {
        **{p: (_e("certificate_unknown", True, _CHROME, certain=False),) for p in CERT_PROBLEMS if p != "weak_key"},
        "invalid": (
            _e("unknown_ca", True, _BSSL + " X509_V_ERR_INVALID_CA"),
            _e("certificate_unknown", True, _CHROME, certain=False),
        ),
    },
    "go": {
        "client_cert_missing": (
            _e(_CERT_REQUIRED, True, "golang/go handshake_server.go processCertsFromClient (newer Go, TLS 1.3)"),
            _e("handshake_failure", True, "golang/go handshake_server.go processCertsFromClient (newest Go, TLS 1.2)"),
        ),
        "client_cert_rejected": (
            _e("unknown_ca", True, _GO_S + " processCertsFromClient (newer Go: x509.UnknownAuthorityError)"),
            _e("certificate_expired", True, _GO_S + " processCertsFromClient (newer Go: x509.Expired)"),
        ),
        "unrecognized_name": (_e("unrecognized_name", False, _GO_S + " (errNoCertificates)"),),
        "weak_key": (
            _e(
                "decrypt_error",
                True,
                "golang/go handshake_client_tls13.go (Go >= 1.24 refuses RSA < 1024 "
                "bits when checking CertificateVerify)",
                certain=False,
            ),
        ),
        "invalid": (_e("unsupported_certificate", True, _GO_C + " (unsupported public key type)"),),
    },
    "java": {
        "revoked": (_e("bad_certificate_status_response", True, _JAVA_12 + " (stapling active)"),),
    },
    "gnutls": {
        "client_cert_missing": (
            _e("bad_certificate", True, "gnutls/gnutls older lib/alert.c mappings", certain=False),
        ),
        "invalid": (
            _e(
                "internal_error",
                True,
                "samples/cert-invalid-purpose.pcap (gnutls-cli: the chain verifies, then 'Key usage violation' ends "
                "the handshake with internal_error)",
            ),
        ),
    },
    "nss": {
        "not_yet_valid": (
            _e(
                "bad_certificate",
                False,
                _NSS + " (Firefox: MOZILLA_PKIX_ERROR_NOT_YET_VALID_CERTIFICATE -> default)",
                certain=False,
            ),
        ),
        "self_signed": (
            _e(
                "bad_certificate",
                False,
                _NSS + " (Firefox: MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT -> default)",
                certain=False,
            ),
        ),
        "invalid": (_e("bad_certificate", False, _NSS + " SEC_ERROR_CA_CERT_INVALID"),),
    },
    "schannel": {
        p: (_e(None, None, "native SChannel callers that do not send the alert token" + _SCH_NOTE, certain=False),)
        for p in CERT_PROBLEMS
    },
    "rustls": {
        "invalid": (
            _e("certificate_unknown", True, _RUSTLS + " Other (basic constraints, CaUsedAsEndEntity)"),
            _e("bad_certificate", True, _RUSTLS + " BadEncoding / UnhandledCriticalExtension"),
        ),
    },
}

# --- mapping stack names ---------------------------------------------------------------------------------------
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), key)
    for pattern, key in (
        (r"\bnode(\.?js)?\b", "node"),
        (r"boringssl|chrom(e|ium)|\bedge\b|okhttp|conscrypt", "boringssl"),
        (r"rustls", "rustls"),
        (r"gnutls", "gnutls"),
        (r"\bnss\b|firefox|tstclnt|thunderbird", "nss"),
        (r"schannel|winhttp|wininet|\.net\b|sslstream|powershell|\bwindows\b|winssl", "schannel"),
        (r"\bjava\b|\bjsse\b|\bjdk\b|openjdk", "java"),
        (r"\bgo\b|golang|crypto/tls", "go"),
        (r"\bcurl\b", "curl"),
        (r"openssl|s_client|s_server|python[^/]*\bssl\b|\bpython ssl\b", "openssl"),
    )
)


def _one_stack_key(name: str) -> str | None:
    s = name.strip().lower().removesuffix("-like").strip()
    for pattern, key in _RULES:
        if pattern.search(s):
            return key
    return None


def stack_keys(stack: str | None) -> tuple[str, ...]:
    """TABLE keys for a stack name ('curl 7.88', 'Go crypto/tls 1.19', 'curl 7.88 / OpenSSL 3.0-like'...); () if unknown."""
    if not stack:
        return ()
    keys: list[str] = []
    for part in stack.split(" / "):
        key = _one_stack_key(part)
        if key is None:
            return ()
        if key not in keys:
            keys.append(key)
    return tuple(keys)


def stack_key(stack: str | None) -> str | None:
    """The single TABLE key for a stack name, or None when unknown or ambiguous."""
    keys = stack_keys(stack)
    return keys[0] if len(keys) == 1 else None


def _problem_rows(problem: str) -> tuple[str, ...]:
    if problem in PROBLEMS:
        return (problem,)
    return CAUSE_PROBLEMS.get(problem, ())


def _tls13(version: str | int | None) -> bool | None:
    if version is None:
        return None
    if isinstance(version, int):
        return version == 0x0304
    return "1.3" in version


def _entry(key: str, problem: str, tls13: bool | None) -> Expected:
    base = TABLE[key][problem]
    if tls13:
        return TLS13.get(key, {}).get(problem, base)
    return base


def expected_alert(stack: str, problem: str, tls_version: str | int | None = None) -> Expected | None:
    """What `stack` sends for `problem` (a problem row or a failure_cause code with one row).

    tls_version ("1.2", "TLSv1.3", 0x0304...) selects the TLS 1.3 variant where a stack differs; without it the
    TLS 1.2 behaviour is returned. None when the stack or problem is unknown, or when an ambiguous stack name
    ('A / B-like') covers stacks that disagree.
    """
    rows = _problem_rows(problem)
    keys = stack_keys(stack)
    if len(rows) != 1 or not keys:
        return None
    found = [_entry(key, rows[0], _tls13(tls_version)) for key in keys]
    first = found[0]
    if all((e.alert, e.encrypted_in_tls13) == (first.alert, first.encrypted_in_tls13) for e in found[1:]):
        return first
    return None


def normalize_alert(alert: str | int | None) -> str | None:
    """'certificate_expired', 'Certificate Expired', 'certificate_expired(45)', '45' or 45 -> 'certificate_expired';
    None and close_notify -> None (no fatal alert)."""
    if alert is None:
        return None
    if isinstance(alert, int):
        name: str | None = _ALERT_NAMES.get(alert, str(alert))
    else:
        text = alert.strip().lower().replace(" ", "_").replace("-", "_")
        m = re.match(r"([a-z_]*)\(?(\d*)\)?", text)
        word, digits = (m.group(1), m.group(2)) if m else ("", "")
        name = word.strip("_") or (_ALERT_NAMES.get(int(digits), digits) if digits else None)
    return None if name in (None, "", "close_notify") else name


def candidates(stack: str | None, problem: str, tls_version: str | int | None = None) -> tuple[Expected, ...]:
    """Every reaction on record for the stack(s) and problem(s): the entry for the version (both versions when
    unknown) and the ALSO alternatives."""
    out: list[Expected] = []
    tls13 = _tls13(tls_version)
    for key in stack_keys(stack):
        for row in _problem_rows(problem):
            if tls13 is None:
                out.append(TABLE[key][row])
                if row in TLS13.get(key, {}):
                    out.append(TLS13[key][row])
            else:
                out.append(_entry(key, row, tls13))
            out.extend(ALSO.get(key, {}).get(row, ()))
    return tuple(out)


def consistent(
    stack: str | None, problem: str, alert: str | int | None, tls_version: str | int | None = None
) -> bool | None:
    """Is the fatal alert seen (None: the stack sent none and closed) what `stack` sends for `problem`?

    True on a match with any reaction on record; False when it matches none and at least one of them is
    certain; None when the stack or problem is unknown or only uncertain entries disagree. Pass alert=None only
    when the capture shows no alert, not when an encrypted alert could not be read.
    """
    found = candidates(stack, problem, tls_version)
    if not found:
        return None
    seen = normalize_alert(alert)
    if any(e.alert == seen for e in found):
        return True
    return False if any(e.certain for e in found) else None
