"""Remediation as data: for every cause code of failure-causes.md, what it means, which side changes, and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.diagnose.causes import Cause


@dataclass(frozen=True, slots=True)
class Remedy:
    meaning: str  # one line: what the evidence says happened
    side: str  # where the change is made: server, client, network, or both named
    action: str  # what to change


REMEDIATION: dict[str, Remedy] = {
    # --- before TLS
    Cause.TCP_REFUSED: Remedy(
        "the SYN was answered by a reset: nothing listens on that address and port",
        "server / network",
        "start the service or fix its listen address and port (or the load balancer's backend); "
        "if a firewall sends the reset, allow the port for these clients",
    ),
    Cause.TCP_TIMEOUT: Remedy(
        "the SYN was never answered",
        "network / server",
        "check firewalls and security groups that drop the SYN, routing to the server, and that the host is up; "
        "a listener whose accept queue is full also drops SYNs",
    ),
    Cause.NO_CLIENT_HELLO: Remedy(
        "TCP connected but the client never sent a ClientHello",
        "client",
        "check the client's TLS settings (is it waiting for a server greeting or a STARTTLS exchange?); "
        "TCP-only health checks and idle pooled connections look like this too",
    ),
    Cause.CLIENT_SENT_PLAINTEXT: Remedy(
        "the client sent plaintext (e.g. an HTTP request) to a TLS port",
        "client",
        "use https:// / enable TLS in the client's configuration, or point it at the plaintext port",
    ),
    Cause.STARTTLS_REFUSED: Remedy(
        "the server refused the client's STARTTLS upgrade",
        "server",
        "enable TLS on the server (certificate and key configured for STARTTLS), or have the client use the "
        "implicit-TLS port; do not let clients fall back to cleartext",
    ),
    # --- negotiation
    Cause.SERVER_NO_RESPONSE: Remedy(
        "the server accepted TCP but never answered the ClientHello",
        "server / network",
        "check that the TLS terminator is alive and not overloaded, that the port really serves TLS, and for "
        "middleboxes or MTU problems that drop large ClientHellos (post-quantum key shares, many extensions)",
    ),
    Cause.SERVER_RESET: Remedy(
        "the server side reset the connection after the ClientHello",
        "server / network",
        "look at the server's and any proxy's or IPS's logs at that time: SNI filtering, TLS inspection rules and "
        "servers that reject an extension or a large hello answer with a reset",
    ),
    Cause.SERVER_CLOSED: Remedy(
        "the server closed after the ClientHello without an alert",
        "server",
        "read the server's handshake error log; stacks that close silently usually lack a certificate for the SNI "
        "or share no version or cipher with the client",
    ),
    Cause.NON_TLS_SERVER: Remedy(
        "the port answered with another protocol (HTTP, SSH, SMTP...)",
        "client / server",
        "point the client at the TLS port, or enable TLS on this listener; the detail names what answered",
    ),
    Cause.PROTOCOL_VERSION: Remedy(
        "client and server share no TLS version",
        "client / server",
        "enable TLS 1.2 and 1.3 on whichever side lacks them; upgrade clients still limited to TLS 1.0/1.1 "
        "rather than re-enabling legacy versions on the server",
    ),
    Cause.NO_SHARED_CIPHER: Remedy(
        "no common cipher suite, group or signature algorithm",
        "server / client",
        "align the server's cipher, group and signature settings with what these clients offer (modern AEAD "
        "suites, X25519/P-256), and check that the certificate's key type (ECDSA or RSA) suits the clients",
    ),
    Cause.UNRECOGNIZED_NAME: Remedy(
        "the server has no certificate or virtual host for the SNI",
        "server / client",
        "add the name to the server's SNI / virtual-host configuration and certificate, or correct the host "
        "name the client uses",
    ),
    Cause.NO_APPLICATION_PROTOCOL: Remedy(
        "no common ALPN protocol",
        "server / client",
        "let the server accept one of the offered protocols (e.g. http/1.1 beside h2), or make the client offer "
        "what the server speaks",
    ),
    Cause.INAPPROPRIATE_FALLBACK: Remedy(
        "a client retried with a lower version and the server detected the downgrade",
        "client / network",
        "find why the first attempt failed (often a middlebox), and remove version-fallback retries from the client",
    ),
    Cause.SERVER_REJECTED_HELLO: Remedy(
        "the server refused the ClientHello (illegal_parameter, decode_error...)",
        "client / server",
        "update the TLS library on the side at fault (the alert names the objection); check middleboxes that "
        "rewrite hellos, and pre-shared-key settings",
    ),
    # --- server certificate rejected by the client
    Cause.CERT_EXPIRED: Remedy(
        "the server's certificate (or one in its chain) had expired",
        "server",
        "renew the certificate (or the expired intermediate) and deploy the new chain on every server that "
        "presents it; automate renewal and alert at 30 days",
    ),
    Cause.CERT_NOT_YET_VALID: Remedy(
        "the certificate's validity had not started for the client",
        "server / client",
        "if the certificate was deployed before its notBefore, redeploy the previous one until then; "
        "otherwise the client's clock is wrong: fix its time synchronisation (NTP)",
    ),
    Cause.CERT_HOSTNAME_MISMATCH: Remedy(
        "the certificate does not cover the name the client asked for",
        "server / client",
        "issue a certificate with that name in subjectAltName, or fix SNI / virtual-host routing so the right "
        "certificate is served, or correct the host name the client connects to",
    ),
    Cause.CERT_SELF_SIGNED: Remedy(
        "the server presented a self-signed certificate the client does not trust",
        "server / client",
        "replace it with a certificate from a CA the clients trust; for an internal service, distribute the "
        "certificate to the clients' trust stores deliberately",
    ),
    Cause.CERT_UNTRUSTED_ROOT: Remedy(
        "the chain ends at a CA the client does not trust",
        "client / server",
        "add the private root to the clients' trust store, or serve a chain to a publicly trusted root; "
        "a TLS-inspecting proxy whose CA the clients lack looks like this too",
    ),
    Cause.CERT_CHAIN_INCOMPLETE: Remedy(
        "the server did not send an intermediate certificate needed to reach a trusted root",
        "server",
        "configure the server to send the full chain (leaf and intermediates, e.g. fullchain.pem); most "
        "non-browser clients do not fetch missing intermediates",
    ),
    Cause.CERT_REVOKED: Remedy(
        "the certificate is revoked (stapled OCSP or the client's alert)",
        "server",
        "issue and deploy a new certificate (with a new key if revoked for compromise) and make sure the server "
        "staples a fresh OCSP response",
    ),
    Cause.CERT_WEAK: Remedy(
        "the client refused a weak key or signature (RSA < 2048, SHA-1, MD5)",
        "server",
        "reissue the certificate with RSA >= 2048 bits or ECDSA P-256 and a SHA-256 signature",
    ),
    Cause.CERT_INVALID: Remedy(
        "the client refused another defect of the chain (key usage, EKU, basic constraints, encoding)",
        "server",
        "reissue with a profile that allows TLS server authentication (keyUsage, extendedKeyUsage serverAuth, CA "
        "flags only on CAs); the detail names the defect",
    ),
    Cause.CERT_REJECTED_UNKNOWN: Remedy(
        "the client rejected the server's certificate, which TLS 1.3 hides",
        "investigate",
        "capture a TLS 1.2 connection to the same server, or record a key log (SSLKEYLOGFILE) and analyse with "
        "--keylog, to see the chain; the client's own logs name its reason",
    ),
    # --- mutual TLS
    Cause.CLIENT_CERT_MISSING: Remedy(
        "the server required a client certificate and the client sent none",
        "client",
        "configure the client's certificate and key; its issuer must be among the CAs the server names (Java and "
        "Go send nothing when it is not)",
    ),
    Cause.CLIENT_CERT_REJECTED: Remedy(
        "the server rejected the client's certificate",
        "client / server",
        "check that the client certificate chains to a CA the server trusts for clients, is within its validity "
        "and has the clientAuth usage; or add its issuing CA to the server's client-CA list",
    ),
    # --- late
    Cause.CLIENT_ABORTED: Remedy(
        "the client closed after the server's flight with no certificate problem visible",
        "client",
        "read the client's logs: certificate pinning, application policy or a client-side timeout",
    ),
    Cause.SERVER_ABORTED: Remedy(
        "the server aborted late in the handshake (decrypt_error, bad_record_mac)",
        "server",
        "look for a key or PSK mismatch (session-ticket keys not shared across a cluster) or a server-side error "
        "in its logs",
    ),
    Cause.OTHER: Remedy(
        "a failure that fits no known pattern",
        "investigate",
        "read the detail and the connection's timeline (explain), and extract its packets for a closer look",
    ),
}


def remedy(cause: str) -> Remedy:
    """The remedy for a cause code (a generic one for a code added to the vocabulary after this table)."""
    return REMEDIATION.get(
        cause, Remedy(f"cause {cause}", "investigate", "read the detail and the connection's timeline (explain)")
    )


__all__ = ["REMEDIATION", "Remedy", "remedy"]
