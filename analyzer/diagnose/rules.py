"""The cause rules, as data: an ordered table of small named functions, first match wins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analyzer.diagnose.causes import Cause, Confidence, Outcome
from analyzer.diagnose.evidence import Evidence, ms, quote
from analyzer.diagnose.stacks import client_stack, refuses, verifies_after_handshake
from analyzer.tls.messages import ClientHello
from analyzer.tls.observer import CLIENT, FINISHED_MIN, SERVER, AlertSeen
from analyzer.tls.registry import alert_name, cipher_name, group_name, version_name

SYN_TIMEOUT_NS = 3_000_000_000  # a lone SYN this long before the capture's end counts as unanswered


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    cause: Cause | None
    detail: str | None
    confidence: Confidence | None = None
    rule_alert: tuple[str, str] | None = None  # (alert, sender) when the rule recognised an encrypted alert


def failed(
    cause: Cause, detail: str, confidence: Confidence = Confidence.CERTAIN, alert: tuple[str, str] | None = None
) -> Verdict:
    return Verdict(Outcome.FAILED, cause, detail, confidence, alert)


def incomplete(detail: str) -> Verdict:
    return Verdict(Outcome.INCOMPLETE, None, detail)


ESTABLISHED = Verdict(Outcome.ESTABLISHED, None, None)

# What a fatal alert means, by who sent it and where: (sender, before ServerHello?) -> description -> cause.
SERVER_HELLO_ALERTS: dict[str, Cause] = {
    "protocol_version": Cause.PROTOCOL_VERSION,
    "handshake_failure": Cause.NO_SHARED_CIPHER,
    "insufficient_security": Cause.NO_SHARED_CIPHER,
    "unrecognized_name": Cause.UNRECOGNIZED_NAME,
    "no_application_protocol": Cause.NO_APPLICATION_PROTOCOL,
    "inappropriate_fallback": Cause.INAPPROPRIATE_FALLBACK,
}
# A client's certificate alert names the defect only loosely (stacks differ); the chain decides when
# certificate validation is available, this table is the alert's own reading.
CLIENT_CERT_ALERTS: dict[str, Cause] = {
    "certificate_expired": Cause.CERT_EXPIRED,
    "certificate_revoked": Cause.CERT_REVOKED,
    "unknown_ca": Cause.CERT_UNTRUSTED_ROOT,
    "bad_certificate": Cause.CERT_INVALID,
    "unsupported_certificate": Cause.CERT_INVALID,
    "certificate_unknown": Cause.CERT_INVALID,
    "access_denied": Cause.CLIENT_ABORTED,
    "insufficient_security": Cause.CERT_WEAK,
}
CLIENT_NEGOTIATION_ALERTS: dict[str, Cause] = {
    "protocol_version": Cause.PROTOCOL_VERSION,
    "inappropriate_fallback": Cause.INAPPROPRIATE_FALLBACK,
}
SERVER_CLIENT_CERT_ALERTS = {
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_expired",
    "certificate_unknown",
    "unknown_ca",
    "access_denied",
    "certificate_required",
    "handshake_failure",
    "decrypt_error",
}


# Which chain defects a client's certificate alert can be naming (stacks differ: design.md §3).
ALERT_DEFECTS: dict[str, tuple[str, ...]] = {
    "certificate_expired": ("expired", "not_yet_valid"),
    "certificate_revoked": ("revoked",),
    "unknown_ca": ("untrusted_root", "self_signed", "chain_incomplete"),
    "insufficient_security": ("weak_key", "weak_signature"),
    # OpenSSL's bad_certificate: it trusted the chain but something else is wrong (GnuTLS and Go say it for
    # everything, in which case no defect below matches and the verdict's own status stands)
    "bad_certificate": ("hostname_mismatch", "expired", "not_yet_valid", "weak_key", "weak_signature", "invalid"),
}


@dataclass(frozen=True, slots=True)
class CertFinding:
    cause: Cause
    detail: str
    source: str | None  # None: this connection's own chain; else the conn_id it was seen in


# Defects whose truth depends on which roots the store holds today; roots are removed over the years, so
# for a capture much older than the store they are weak evidence unless the client's alert confirms them.
STORE_DEPENDENT = ("untrusted_root", "chain_incomplete")
# Defects that only some stacks, in some years, refuse (RSA-1024: Debian's OpenSSL yes, node/Java/Go no;
# SHA-1 was everywhere in 2014): a silent close is not enough to blame them, an alert is.
POLICY_DEPENDENT = ("weak_key", "weak_signature")


def cert_finding(
    ev: Evidence, alert: str | None = None, confirmed: bool = False, after_handshake: bool = False
) -> CertFinding | None:
    """The certificate problem behind a rejection: this connection's chain, else the same server's chain
    seen in another connection; a stapled revoked OCSP response counts. None when the chain is fine or unseen.

    ``confirmed``: the client sent a certificate alert, which is enough to blame any defect. Otherwise
    a defect is blamed only when it does not rest on guesswork (``usable_defect``). ``after_handshake``:
    the client even finished the handshake before it closed (curl, node), the weakest signal of all."""
    from analyzer.x509.validate import CAUSE_BY_STATUS

    if ev.cert_verdict is not None:
        verdict, ocsp, source = ev.cert_verdict, ev.ocsp, None
    elif ev.peer_verdict is not None:
        source, verdict, ocsp = ev.peer_verdict
    else:
        return None
    if ocsp is not None and ocsp.status == "revoked":
        return CertFinding(Cause.CERT_REVOKED, ocsp.detail, source)
    if verdict.status == "ok":
        return None
    usable = [d for d in verdict.defects if confirmed or usable_defect(ev, d.code, after_handshake)]
    if not usable:
        return None
    codes = {d.code for d in usable}
    chosen = next(d for d in usable if d.code == verdict.status) if verdict.status in codes else usable[0]
    for defect in usable:  # the defect the client's alert names, when the chain has it
        if defect.code in ALERT_DEFECTS.get(alert or "", ()):
            chosen = defect
            break
    detail = verdict.detail if chosen.code == verdict.status else chosen.detail
    return CertFinding(CAUSE_BY_STATUS[chosen.code], detail, source)


def usable_defect(ev: Evidence, code: str, after_handshake: bool) -> bool:
    """May an unconfirmed rejection be blamed on this defect?

    - hostname without SNI: only for an explicit rejection by a stack known exactly (its fingerprint is in
      stacks_data): such stacks send SNI whenever they connect by name, so they connected by address. Never
      for a silent close after a finished handshake, unless the stack is one that verifies after the
      handshake (curl, node): load-balancer health checks and `openssl s_client` probes connect by address
      without SNI, verify nothing and close the same way.
    - untrusted root / missing intermediate: not for a capture much older than the trust store; after a
      finished handshake, only when the user named the anchors (private PKIs are everywhere).
    - weak key / SHA-1: when the client's stack is known to refuse it by default (stacks.WEAK_POLICY);
      for an unknown stack, an explicit mid-handshake rejection may blame it, a silent close may not."""
    stack = _stack(ev)
    if code == "hostname_mismatch":
        sni = ev.obs.client_hello.sni if ev.obs is not None and ev.obs.client_hello is not None else None
        if sni is not None:
            return True
        if after_handshake:
            return verifies_after_handshake(stack)
        return stack is not None and not stack.endswith("-like")
    if code in STORE_DEPENDENT or code == "self_signed":
        if code != "self_signed" and not ev.store_current:
            return False
        return not after_handshake or ev.user_anchors
    if code in POLICY_DEPENDENT:
        rejects = refuses(stack, code)
        return rejects if rejects is not None else not after_handshake
    return True


def _stack(ev: Evidence) -> str | None:
    from analyzer.tables import fingerprints

    if ev.obs is None:
        return None
    return client_stack(fingerprints(ev.obs)[1])


def _contradiction(ev: Evidence, found: CertFinding, alert: str) -> str:
    """When the client's stack is known and normally sends another alert for this defect, say so
    (alert_semantics.py): a client with a wrong clock or its own trust store shows up this way."""
    from analyzer.diagnose.alert_semantics import CAUSE_PROBLEMS, consistent, expected_alert

    stack = _stack(ev)
    version = ev.obs.version if ev.obs is not None else None
    for problem in CAUSE_PROBLEMS.get(found.cause.value, ()):
        verdict = consistent(stack, problem, alert, version)
        if verdict is None or verdict:
            return ""
        usual = expected_alert(stack or "", problem, version)
        if usual is not None:
            return (
                f"; note: {stack} normally answers {problem.replace('_', ' ')} with "
                f"{usual.alert or 'a silent close'}, not {alert}: the client may see a different chain or clock"
            )
    return ""


def _confidence(f: CertFinding) -> Confidence:
    """Certain when this connection's own certificate (seen in clear, or through its keys) shows the defect
    and its own packets show the rejection; inferred when the certificate came from another connection."""
    return Confidence.CERTAIN if f.source is None else Confidence.INFERRED


def _from(f: CertFinding) -> str:
    return "" if f.source is None else f"the same server's certificate, seen in connection {f.source}: "


def _port(ev: Evidence) -> str:
    return f"port {ev.server_port}"


# ---------------------------------------------------------------------------- transport


def tcp_refused(ev: Evidence) -> Verdict | None:
    f = ev.flow
    if not ev.syn_seen or f.syn_ack is not None or ev.packets(SERVER) == 0:
        return None
    rst = ev.rst(SERVER)
    if rst is None or ev.obs is not None:
        return None
    assert f.syn_ts is not None
    return failed(
        Cause.TCP_REFUSED,
        f"SYN to {_port(ev)} answered by RST after {ms(rst[0] - f.syn_ts)}: nothing listens there (or a firewall rejects it)",
    )


def tcp_timeout(ev: Evidence) -> Verdict | None:
    f = ev.flow
    if not ev.syn_seen or f.syn_ack is not None or ev.packets(SERVER) > 0 or f.first_payload[0] or f.first_payload[1]:
        return None
    assert f.syn_ts is not None
    waited = ev.capture_end_ns - f.syn_ts
    if f.syn_count < 2 and waited < SYN_TIMEOUT_NS:
        return incomplete(f"SYN to {_port(ev)} sent {ms(waited)} before the capture ended; no answer yet")
    return failed(
        Cause.TCP_TIMEOUT,
        f"{f.syn_count} SYN(s) to {_port(ev)} over {ms(f.last_ts - f.syn_ts)} never answered "
        f"(capture ran {ms(waited)} past the first): host down, filtered, or packets dropped",
    )


def mid_connection(ev: Evidence) -> Verdict | None:
    """The capture began after the handshake: say what can be said, never call it a failure."""
    f, obs = ev.flow, ev.obs
    if ev.syn_seen or f.syn_ack is not None:
        return None
    if obs is not None and (obs.client_hello is not None or obs.server_hello is not None):
        return None
    if obs is not None and obs.app_records[CLIENT] and obs.app_records[SERVER]:
        return ESTABLISHED
    return incomplete("capture began mid-connection: no TCP or TLS handshake seen")


def no_client_hello(ev: Evidence) -> Verdict | None:
    if ev.first_payload(CLIENT) is not None:
        return None
    banner = ev.first_payload(SERVER)
    extra = f"; the server had sent {quote(banner[2])}" if banner else ""
    close = ev.close(CLIENT) or ev.close(SERVER)
    if close:
        who = "client" if ev.close(CLIENT) == close else "server"
        return failed(
            Cause.NO_CLIENT_HELLO,
            f"TCP connected but the client never sent a ClientHello; the {who} closed with {close[2]} (frame {close[1]}){extra}",
        )
    return failed(Cause.NO_CLIENT_HELLO, f"TCP connected but the client sent nothing before the capture ended{extra}")


def starttls_refused(ev: Evidence) -> Verdict | None:
    """The client asked to upgrade a cleartext protocol to TLS and never got to send a ClientHello."""
    f = ev.flow
    outcome = f.starttls_outcome
    if outcome is None or ev.obs is not None:
        return None
    from analyzer.tcp.starttls import NoResponse

    if isinstance(outcome, NoResponse):
        return failed(
            Cause.SERVER_NO_RESPONSE,
            f"client asked to start TLS inside {outcome.protocol.value.upper()} and the server did not answer: {outcome.detail}",
        )
    return failed(
        Cause.STARTTLS_REFUSED,
        f"the client wanted TLS inside {outcome.protocol.value.upper()} and the server refused it: {outcome.detail}",
    )


def client_sent_plaintext(ev: Evidence) -> Verdict | None:
    if ev.flow.client_payload_tls is not False:
        return None
    fp = ev.first_payload(CLIENT)
    assert fp is not None
    answer = ev.first_payload(SERVER)
    if answer is not None:
        reply = "a TLS alert" if ev.server_sent_tls() else quote(answer[2])
    else:
        close = ev.close(SERVER)
        reply = f"a {close[2]}" if close else "nothing"
    why = "a server that speaks TLS elsewhere in this capture" if ev.server_speaks_tls_elsewhere else f"TLS {_port(ev)}"
    return failed(
        Cause.CLIENT_SENT_PLAINTEXT,
        f"client sent plaintext {quote(fp[2])} (frame {fp[1]}) to {why}; the server answered with {reply}",
    )


# ---------------------------------------------------------------------------- negotiation


def server_silent(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    if obs is None or obs.client_hello is None or ev.first_payload(SERVER) is not None:
        return None
    assert obs.client_hello_ts is not None
    ch = obs.client_hello_ts
    rst, fin = ev.rst(SERVER), ev.fin(SERVER)
    # the client gives up with a FIN/RST or with an alert first (Java says user_canceled, then close_notify)
    cclose = _shutdown(ev, CLIENT)
    if rst and (cclose is None or rst[0] <= cclose[0]) and (fin is None or rst[0] <= fin[0]):
        return failed(
            Cause.SERVER_RESET,
            f"server side reset the connection {ms(rst[0] - ch)} after the ClientHello without a TLS answer (frame {rst[1]}): a TLS-intercepting middlebox, a crashed handler, or a server refusing the SNI",
        )
    if fin and (cclose is None or fin[0] <= cclose[0]):
        return failed(
            Cause.SERVER_CLOSED,
            f"server closed (FIN) {ms(fin[0] - ch)} after the ClientHello without sending an alert (frame {fin[1]})",
        )
    if cclose:
        return failed(
            Cause.SERVER_NO_RESPONSE,
            f"server sent nothing for {ms(cclose[0] - ch)} after the ClientHello; the client gave up with {cclose[2]} (frame {cclose[1]})",
        )
    return incomplete(f"ClientHello sent {ms(ev.capture_end_ns - ch)} before the capture ended; no server answer yet")


def non_tls_server(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    sp = ev.first_payload(SERVER)
    if obs is None or sp is None or obs.server_hello is not None or ev.server_sent_tls():
        return None
    return failed(
        Cause.NON_TLS_SERVER,
        f"server answered the ClientHello with non-TLS bytes {quote(sp[2])} (frame {sp[1]}): wrong port or a plaintext service",
    )


def _alert_text(a: AlertSeen, who: str) -> str:
    return f"{who} sent fatal alert {a.name} (frame {a.frame})"


def server_alert_to_hello(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    a = ev.first_fatal_alert()
    if obs is None or a is None or a.side != SERVER or obs.server_hello is not None or a.description is None:
        return None
    cause = SERVER_HELLO_ALERTS.get(a.name, Cause.SERVER_REJECTED_HELLO)
    ch = obs.client_hello
    when = f" {ms(a.ts_ns - obs.client_hello_ts)} after the ClientHello" if obs.client_hello_ts else ""
    versions_verdict = _versions_disjoint(ev, a, cause, when)
    if versions_verdict is not None:
        return versions_verdict
    offered = negotiation_context(ev, cause)
    if ch is not None and not offered:
        if cause is Cause.UNRECOGNIZED_NAME:
            offered = f"; the client asked for SNI {ch.sni!r}: the server has no certificate (or virtual host) for it"
        elif cause is Cause.NO_APPLICATION_PROTOCOL:
            offered = f"; the client offered ALPN {', '.join(ch.alpn) or 'none'} and the server supports none of them"
    return failed(cause, _alert_text(a, "server") + when + offered)


def _versions(vs: object) -> str:
    names = sorted({version_name(v) or "" for v in vs}, key=_version_order)  # type: ignore[attr-defined]
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]


def _version_order(name: str) -> tuple[int, str]:
    return (0 if name.startswith("SSL") else 1, name)


def _offered_versions(ch: ClientHello) -> str:
    real = [v for v in ch.supported_versions if (v & 0x0F0F) != 0x0A0A] or [ch.legacy_version]
    lo, hi = min(real), max(real)
    return version_name(hi) or "?" if lo == hi else f"{version_name(lo)}-{(version_name(hi) or '').split()[-1]}"


def _suites(codes: object, limit: int = 3) -> str:
    names = [cipher_name(c) or "?" for c in codes]  # type: ignore[attr-defined]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def negotiation_context(ev: Evidence, cause: Cause) -> str:
    """What the client offered and, when other connections show it, what this server accepts."""
    ch = ev.obs.client_hello if ev.obs else None
    if ch is None:
        return ""
    srv = ev.server
    if cause is Cause.PROTOCOL_VERSION:
        text = f"; the client offered only {_offered_versions(ch)}"
        if srv is not None and srv.connections:
            text += f"; this server negotiated {_versions(srv.versions)} with {srv.connections} other connection(s)"
        return text
    if cause is Cause.NO_SHARED_CIPHER:
        real = [c for c in ch.cipher_suites if (c & 0x0F0F) != 0x0A0A and c not in (0x00FF, 0x5600)]
        text = f"; the client offered {len(real)} suite(s): {_suites(real)}"
        if srv is not None and srv.connections:
            chosen = [c for c, _ in srv.ciphers.most_common()]
            text += f"; elsewhere this server chose {_suites(chosen)} ({srv.connections} connection(s))"
        elif ch.supported_groups:
            text += f"; groups offered: {', '.join(group_name(g) or '?' for g in ch.supported_groups[:4])}"
        return text
    return ""


def _versions_disjoint(ev: Evidence, a: AlertSeen, cause: Cause, when: str) -> Verdict | None:
    """Some stacks refuse a too-old client with internal_error or handshake_failure, not
    protocol_version (OpenSSL 3 when its security level rules TLS 1.0 out): the offered versions
    against what the same server negotiated elsewhere in the capture decide it."""
    ch = ev.obs.client_hello if ev.obs else None
    if ch is None or cause not in (Cause.SERVER_REJECTED_HELLO, Cause.NO_SHARED_CIPHER):
        return None
    offered = ch.max_version
    srv = ev.server
    if srv is not None and srv.versions and offered < min(srv.versions):
        return failed(
            Cause.PROTOCOL_VERSION,
            f"{_alert_text(a, 'server')}{when} instead of protocol_version"
            + negotiation_context(ev, Cause.PROTOCOL_VERSION)
            + ": no common version",
            Confidence.INFERRED,
        )
    if srv is None and offered <= 0x0301 and a.name == "internal_error":
        return failed(
            Cause.PROTOCOL_VERSION,
            f"{_alert_text(a, 'server')}{when}; the client offered only {_offered_versions(ch)} (deprecated by "
            "RFC 8996), which current servers refuse, some with internal_error instead of protocol_version",
            Confidence.INFERRED,
        )
    return None


def client_alert(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    a = ev.first_fatal_alert()
    if obs is None or a is None or a.side != CLIENT or a.description is None:
        return None
    ref = obs.server_certificate_ts or obs.server_hello_ts
    when = (
        f" {ms(a.ts_ns - ref)} after the server's {'Certificate' if obs.server_certificate_ts else 'hello'}"
        if ref
        else ""
    )
    said = _alert_text(a, "client") + when
    if a.name in CLIENT_CERT_ALERTS:
        found = cert_finding(ev, a.name, confirmed=True)
        if found is not None:
            conf = Confidence.CERTAIN if found.source is None else Confidence.INFERRED
            return failed(
                found.cause,
                f"{_from(found)}{found.detail}; the {said} confirms it{_contradiction(ev, found, a.name)}",
                conf,
            )
        if ev.cert_verdict is not None:  # the chain validates for us: the client's roots or policy differ
            cause = CLIENT_CERT_ALERTS[a.name]
            return failed(
                cause,
                f"{said}, yet the chain validates against {ev.cert_verdict.anchor_source or 'our anchors'}: the client "
                "trusts a different set of roots (or pins, or applies its own policy)",
                Confidence.INFERRED,
            )
    cause = CLIENT_NEGOTIATION_ALERTS.get(a.name) or CLIENT_CERT_ALERTS.get(a.name) or Cause.OTHER
    if cause is Cause.OTHER and obs.finished_ts[CLIENT] is None and obs.server_certificate_ts is not None:
        # a non-certificate alert right after the server's Certificate, from a client that never finished, with a
        # defective chain: the chain explains it (GnuTLS reports a key usage violation as internal_error)
        found = cert_finding(ev, a.name, confirmed=True)
        if found is not None:
            return failed(
                found.cause,
                f"{_from(found)}{found.detail}; the {said}, not a certificate alert, right after the certificate",
                _confidence(found),
            )
    if a.name in CLIENT_CERT_ALERTS and obs.tls13 and obs.server_certificate is None:
        said += (
            "; the certificate itself is encrypted in TLS 1.3 and no other connection shows it: "
            "a key log (SSLKEYLOGFILE) would show which certificate and why"
        )
    return failed(cause, said)


def server_alert_late(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    a = ev.first_fatal_alert()
    if obs is None or a is None or a.side != SERVER or a.description is None:
        return None
    cclose = ev.close(CLIENT)
    if cclose is not None and cclose[0] <= a.ts_ns:
        return None  # the server's answer to the client going away (OpenSSL says decode_error), not the cause
    cc = obs.client_certificate
    if obs.certificate_request is not None and a.name in SERVER_CLIENT_CERT_ALERTS:
        if cc is None or not cc.entries:
            what = "an empty Certificate" if cc is not None else "no Certificate"
            return failed(
                Cause.CLIENT_CERT_MISSING,
                f"server requested a client certificate, the client sent {what}, and the {_alert_text(a, 'server')}",
            )
        return failed(
            Cause.CLIENT_CERT_REJECTED,
            f"client sent a certificate chain of {len(cc.entries)} and the {_alert_text(a, 'server')}",
        )
    return failed(Cause.SERVER_ABORTED, _alert_text(a, "server") + " after the client's second flight")


def encrypted_client_alert(ev: Evidence) -> Verdict | None:
    """TLS 1.3: a lone short encrypted record from the client right after the server's flight, then close."""
    obs = ev.obs
    server_flight = obs.finished_ts[SERVER] if obs else None
    if obs is None or not obs.tls13 or obs.finished_ts[CLIENT] is not None or server_flight is None:
        return None
    rec = ev.lone_encrypted_record(CLIENT, server_flight)
    if rec is None:
        return None
    close = ev.close(CLIENT)
    tail = f", then {close[2]}" if close else ""
    found = cert_finding(ev)
    if found is not None:
        return failed(
            found.cause,
            f"client answered the server's encrypted flight with a lone {rec.length}-byte encrypted record (an alert) "
            f"{ms(rec.ts_ns - server_flight)} later (frame {rec.frame}){tail}; {_from(found)}{found.detail}",
            Confidence.INFERRED,
            ("encrypted", "client"),
        )
    return failed(
        Cause.CERT_REJECTED_UNKNOWN,
        f"client answered the server's encrypted flight with a lone {rec.length}-byte encrypted record (an alert) "
        f"{ms(rec.ts_ns - server_flight)} later (frame {rec.frame}){tail}; the certificate is encrypted in TLS 1.3: "
        "a key log (SSLKEYLOGFILE) or a TLS 1.2 handshake to the same server would show why",
        Confidence.INFERRED,
        ("encrypted", "client"),
    )


def encrypted_server_alert(ev: Evidence) -> Verdict | None:
    """The server answered the client's second flight with an encrypted alert and closed."""
    obs = ev.obs
    if obs is None:
        return None
    if obs.tls13:
        start = obs.client_flight_ts
        if start is None:
            return None
        rec = ev.lone_encrypted_record(SERVER, start)
        cclose = ev.close(CLIENT)
        if rec is None or rec.length > SERVER_ALERT_MAX or (ev.close(SERVER) is None and cclose is None):
            return None
        if cclose is not None and cclose[0] <= rec.ts_ns:
            return None  # the client closed first: that record is the server's close_notify
        return _tls13_server_rejection(ev, rec.frame, start)
    enc = [a for a in obs.alerts if a.side == SERVER and a.encrypted]
    if obs.established or not enc or obs.finished_ts[CLIENT] is None:
        return None
    return failed(
        Cause.SERVER_ABORTED,
        f"server sent an encrypted alert (frame {enc[0].frame}) after the client's second flight instead of its "
        "Finished: a key or PSK mismatch (bad_record_mac/decrypt_error) or a server-side error; a key log would show which",
        Confidence.INFERRED,
        ("encrypted", "server"),
    )


# An encrypted TLS 1.3 alert from a server is 2 bytes + content type + a 16-byte tag = 19 (8-byte tag with
# CCM_8: 11); a bigger lone record is a small response (an LDAP result), not an alert.
SERVER_ALERT_MAX = 24

# TLS 1.3 record sizes that betray the client's second flight when each message has its own record:
# an empty Certificate is 8 bytes of message + content type + 16-byte tag = 25 (Java pads it, 41);
# a Finished is at least 53. A real certificate chain is hundreds of bytes, then CertificateVerify.
EMPTY_CERTIFICATE_MAX = FINISHED_MIN - 1
CLIENT_CHAIN_MIN = 200


def _tls13_server_rejection(ev: Evidence, frame: int, flight_start: int) -> Verdict:
    obs = ev.obs
    assert obs is not None
    sizes = [r.length for r in obs.records if r.side == CLIENT and r.content_type == 23 and r.ts_ns >= flight_start]
    head = f"server answered the client's second flight with a lone encrypted alert (frame {frame}) and closed; "
    alert = ("encrypted", "server")
    if len(sizes) >= 2 and sizes[0] <= EMPTY_CERTIFICATE_MAX:
        return failed(
            Cause.CLIENT_CERT_MISSING,
            head + f"the client's flight began with a {sizes[0]}-byte record, the size of an empty Certificate: "
            "the server asked for a client certificate and got none (a key log would confirm certificate_required)",
            Confidence.INFERRED,
            alert,
        )
    if len(sizes) >= 3 and sizes[0] >= CLIENT_CHAIN_MIN:
        return failed(
            Cause.CLIENT_CERT_REJECTED,
            head + f"the client's flight began with a {sizes[0]}-byte record (a certificate chain) and a "
            "CertificateVerify: the server rejected the client certificate (a key log would show the alert)",
            Confidence.INFERRED,
            alert,
        )
    return failed(
        Cause.SERVER_ABORTED,
        head + "in TLS 1.3 usually certificate_required/bad_certificate (mutual TLS) or decrypt_error; "
        "a key log would show which",
        Confidence.INFERRED,
        alert,
    )


# ---------------------------------------------------------------------------- completion


def _shutdown(ev: Evidence, side: int) -> tuple[int, int, str] | None:
    """When ``side`` began closing after the handshake: its first alert record (close_notify or
    fatal, clear or encrypted; in TLS 1.3 a record too small to be data) or its FIN/RST."""
    obs = ev.obs
    assert obs is not None
    marks: list[tuple[int, int, str]] = []
    close = ev.close(side)
    if close is not None:
        marks.append(close)
    for a in obs.alerts:
        if a.side == side:
            marks.append((a.ts_ns, a.frame, "an alert"))
            break
    first_app = obs.first_app_ts[side]
    if obs.tls13 and first_app is not None and obs.app_max[side] < FINISHED_MIN and not obs.app_decrypted[side]:
        frame = next((r.frame for r in obs.records if r.side == side and r.ts_ns == first_app), 0)
        marks.append((first_app, frame, "an encrypted alert"))
    return min(marks) if marks else None


def closed_without_data(ev: Evidence) -> Verdict | None:
    """The client finished the handshake, sent no application data and began closing first, and the
    certificate is bad: it checked the certificate after the handshake (curl's hostname check, node)."""
    obs = ev.obs
    if obs is None or not obs.established or obs.app_decrypted[CLIENT]:
        return None
    # Did the client send data? Before TLS 1.3 alerts have their own record type, so any application-data
    # record is data; in TLS 1.3 everything is application_data and only a record too big to be an
    # encrypted alert proves it.
    if obs.app_records[CLIENT] and (not obs.tls13 or obs.app_max[CLIENT] >= FINISHED_MIN):
        return None
    cend, send = _shutdown(ev, CLIENT), _shutdown(ev, SERVER)
    if cend is None or (send is not None and send[0] < cend[0]):
        return None
    found = cert_finding(ev, after_handshake=True)
    if found is None:
        return None
    done = obs.finished_ts[CLIENT] or cend[0]
    return failed(
        found.cause,
        f"client completed the handshake, sent no application data and closed with {cend[2]} "
        f"{ms(cend[0] - done)} later (frame {cend[1]}), as clients that check the certificate after the "
        f"handshake do; {_from(found)}{found.detail}",
        _confidence(found),
    )


def established(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    if obs is None:
        return None
    if obs.established:
        return ESTABLISHED
    if obs.client_hello is None and obs.server_hello is None:  # the hellos were cut (snap length) or lost
        if obs.app_records[CLIENT] and obs.app_records[SERVER]:
            return ESTABLISHED  # application data flows both ways
        return incomplete(
            "the handshake messages are not readable (snap length or gaps) and data did not flow both ways"
        )
    return None


def aborted(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    if obs is None or obs.server_hello is None:
        return None
    cclose, sclose = ev.close(CLIENT), ev.close(SERVER)
    client_done = obs.finished_ts[CLIENT] is not None
    if not client_done and cclose and (sclose is None or cclose[0] <= sclose[0]):
        ref = obs.finished_ts[SERVER] or obs.server_hello_done_ts or obs.server_certificate_ts or obs.server_hello_ts
        assert ref is not None
        found = cert_finding(ev)
        if found is not None:
            return failed(
                found.cause,
                f"client closed with {cclose[2]} {ms(cclose[0] - ref)} after the server's flight without an alert "
                f"(frame {cclose[1]}); {_from(found)}{found.detail}",
                _confidence(found),
            )
        return failed(
            Cause.CLIENT_ABORTED,
            f"client closed with {cclose[2]} {ms(cclose[0] - ref)} after the server's flight without an alert (frame {cclose[1]}): application policy, pinning, or a certificate problem the client did not report",
        )
    if client_done and sclose and (cclose is None or sclose[0] <= cclose[0]):
        return failed(
            Cause.SERVER_ABORTED,
            f"server closed with {sclose[2]} after the client's second flight without finishing the handshake (frame {sclose[1]})",
        )
    if sclose and not client_done:
        return failed(Cause.SERVER_ABORTED, f"server closed with {sclose[2]} during the handshake (frame {sclose[1]})")
    return None


def gap_or_end(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    gaps = [e for e in ev.flow.events if e[3] == "gap"]
    if gaps:
        return incomplete(
            f"{len(gaps)} gap(s) in the capture (first at frame {gaps[0][1]}: {gaps[0][4]}) before the handshake finished"
        )
    if obs is not None and not ev.flow.closed:
        return incomplete("the capture ends before the handshake finished")
    return None


def fallback(ev: Evidence) -> Verdict | None:
    obs = ev.obs
    stage = "after the ServerHello" if obs and obs.server_hello else "after the ClientHello"
    return failed(
        Cause.OTHER,
        f"the handshake stopped {stage} and the connection closed; no rule matched the evidence",
        Confidence.INFERRED,
    )


# The rule table: (name, function, when it applies). Order matters: the first rule that answers decides.
RULE_TABLE: tuple[tuple[str, Callable[[Evidence], Verdict | None], str], ...] = (
    ("tcp_refused", tcp_refused, "the SYN was answered by RST"),
    ("tcp_timeout", tcp_timeout, "SYNs were never answered"),
    ("mid_connection", mid_connection, "the capture began after the TCP handshake"),
    ("no_client_hello", no_client_hello, "TCP connected but the client sent no bytes"),
    ("starttls_refused", starttls_refused, "a cleartext protocol's upgrade to TLS was refused or not answered"),
    ("client_sent_plaintext", client_sent_plaintext, "the client's first bytes were not TLS"),
    ("server_silent", server_silent, "ClientHello sent and the server sent nothing back"),
    ("non_tls_server", non_tls_server, "the server answered with bytes that are not TLS"),
    ("server_alert_to_hello", server_alert_to_hello, "the server sent a fatal alert before any ServerHello"),
    ("client_alert", client_alert, "the client sent a readable fatal alert"),
    ("server_alert_late", server_alert_late, "the server sent a readable fatal alert after its hello"),
    (
        "encrypted_client_alert",
        encrypted_client_alert,
        "TLS 1.3: a lone short encrypted client record after the server's flight",
    ),
    (
        "encrypted_server_alert",
        encrypted_server_alert,
        "a lone encrypted server record after the client's second flight, then close",
    ),
    (
        "closed_without_data",
        closed_without_data,
        "handshake finished, client closed without data, and the certificate is bad",
    ),
    ("established", established, "both sides finished the handshake"),
    ("aborted", aborted, "one side closed mid-handshake without an alert"),
    ("gap_or_end", gap_or_end, "the capture has a gap or ends before the handshake finished"),
    ("fallback", fallback, "nothing else matched"),
)
RULES = tuple((name, fn) for name, fn, _ in RULE_TABLE)


def classify(ev: Evidence) -> tuple[str, Verdict]:
    for name, rule in RULES:
        verdict = rule(ev)
        if verdict is not None:
            return name, verdict
    raise AssertionError("the fallback rule always answers")


__all__ = ["RULES", "Verdict", "alert_name", "classify"]
