"""Chain verdicts: build the path from the leaf ourselves, decide each defect explicitly, then ask the strict verifier.

The status of a verdict is the code of its most important defect, in this fixed precedence (first wins):

  1. invalid (undecodable)  a certificate in the flight cannot be decoded: nothing else can be judged, and every TLS
                            stack aborts on it (decode_error / bad_certificate).
  2. self_signed            the leaf is its own issuer and not a trust anchor;  a more specific form of 3.
  3. untrusted_root         the path ends at a self-signed CA that is not an anchor.
  4. chain_incomplete       the server did not send an intermediate the path needs (found in --intermediates, or nowhere).
     Trust comes first (2-4) because every stack builds the path before any other check and reports a path failure
     first (OpenSSL 18/19/20, Go UnknownAuthorityError, Java PKIX "unable to find valid certification path"), and
     because once trust fails, no other finding changes what the operator must fix first.
  5. expired                any certificate on the path is past notAfter at the capture time;
  6. not_yet_valid          ... or before notBefore. Checked by every stack, with its own alert (certificate_expired),
                            and the most common real-world cause; expiry before not-yet-valid (far more frequent).
  7. hostname_mismatch      the SNI (or the server address when there is no SNI) is not in the leaf's names. Every
                            browser-like client checks it, but some only after the handshake (curl, node), so its
                            evidence is weaker than an expiry alert.
  8. weak_key               RSA/DSA < 2048 bits, EC < 224 bits, anywhere on the path;
  9. weak_signature         MD5/SHA-1 (or MD2/MD4) signature on a non-anchor certificate of the path. Stack-dependent
                            (Debian's OpenSSL rejects RSA-1024, node/Java/Go/GnuTLS accept it), so below the
                            universal checks: a universal defect present at the same time is the likelier cause.
 10. invalid                basicConstraints (an issuer that is not a CA, pathLen exceeded), keyUsage without
                            keyCertSign on an issuer, extendedKeyUsage without serverAuth/clientAuth, undecodable
                            extensions: the rarest and most stack-dependent findings.
  -  ok                     none of the above.

All defects are collected (ChainVerdict.defects) whatever the status. Warnings (order, duplicates, unneeded
certificates, an anchor sent by the server, a CA:TRUE leaf) never change the status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from analyzer.diagnose.causes import Cause
from analyzer.picklable import Frozen
from analyzer.x509.certs import (
    WEAK_HASHES,
    CertInfo,
    describe,
    iso,
    load_certificate,
    loose_name_key,
    quiet,
    span,
    verify_issued,
)
from analyzer.x509.trust import CertPool, TrustStore, spki

Status = Literal[
    "ok",
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "untrusted_root",
    "chain_incomplete",
    "weak_key",
    "weak_signature",
    "invalid",
]

# Defect kinds in precedence order, each with the status code it yields (see the module docstring).
PRECEDENCE: tuple[tuple[str, Status], ...] = (
    ("empty", "invalid"),
    ("undecodable", "invalid"),
    ("self_signed", "self_signed"),
    ("untrusted_root", "untrusted_root"),
    ("chain_incomplete", "chain_incomplete"),
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
    ("hostname_mismatch", "hostname_mismatch"),
    ("weak_key", "weak_key"),
    ("weak_signature", "weak_signature"),
    ("not_ca", "invalid"),
    ("path_length", "invalid"),
    ("key_usage", "invalid"),
    ("extended_key_usage", "invalid"),
    ("bad_extensions", "invalid"),
)
_RANK = {kind: rank for rank, (kind, _) in enumerate(PRECEDENCE)}
_STATUS_OF = dict(PRECEDENCE)

# Chain status (and the stapled-OCSP status "revoked") -> failure-cause code of failure-causes.md.
CAUSE_BY_STATUS: dict[str, Cause] = {
    "expired": Cause.CERT_EXPIRED,
    "not_yet_valid": Cause.CERT_NOT_YET_VALID,
    "hostname_mismatch": Cause.CERT_HOSTNAME_MISMATCH,
    "self_signed": Cause.CERT_SELF_SIGNED,
    "untrusted_root": Cause.CERT_UNTRUSTED_ROOT,
    "chain_incomplete": Cause.CERT_CHAIN_INCOMPLETE,
    "weak_key": Cause.CERT_WEAK,
    "weak_signature": Cause.CERT_WEAK,
    "invalid": Cause.CERT_INVALID,
    "revoked": Cause.CERT_REVOKED,
}

MIN_RSA_BITS = 2048
MIN_DSA_BITS = 2048
MIN_EC_BITS = 224
MAX_PATH = 10  # certificates on a path, leaf and anchor included
MAX_SIGNATURE_CHECKS = 400  # bounds on path-building work for hostile flights
MAX_STEPS = 2000
_NS_PER_DAY = 86_400 * 10**9
_HASH_NAMES = {"md2": "MD2", "md4": "MD4", "md5": "MD5", "sha1": "SHA-1"}

Origin = Literal["server", "anchor", "intermediates"]


@dataclass(frozen=True, slots=True)
class Defect(Frozen):
    """One finding on a chain. code: a status code; position: place on the built path (0 = leaf), None when the
    certificate is not on it; kind: the finer reason (see PRECEDENCE); detail: one actionable sentence."""

    code: Status
    position: int | None
    sha256: str
    detail: str
    kind: str = ""


@dataclass(frozen=True, slots=True)
class ChainVerdict(Frozen):
    """The verdict on one presented chain at one instant, and the path it rests on (sha256 from leaf to anchor)."""

    status: Status
    detail: str
    defects: tuple[Defect, ...] = ()
    warnings: tuple[str, ...] = ()
    sni_matches: bool | None = None
    days_to_expiry: float | None = None
    path: tuple[str, ...] = ()
    anchor: str | None = None
    anchor_source: str | None = None
    strict_ok: bool | None = None
    strict_detail: str | None = None


@dataclass(frozen=True, slots=True)
class _Cert:
    der: bytes
    cert: x509.Certificate
    info: CertInfo
    origin: Origin
    chain_index: int | None  # index in the presented chain (first occurrence), None if not sent by the server
    source: str  # label of the store or pool it came from ("server" when sent)


@dataclass(slots=True)
class _Search:
    """Mutable state of one path search."""

    checks: int = 0
    steps: int = 0
    done: bool = False  # a path to an anchor from certificates the server sent, all in time: nothing beats it
    verified: dict[tuple[str, str], str | None] = dataclasses.field(default_factory=dict)  # (child, issuer) -> error
    rejected: dict[str, list[_Cert]] = dataclasses.field(default_factory=dict)  # child sha -> same-name non-signers
    unverifiable: list[str] = dataclasses.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Path:
    nodes: tuple[_Cert, ...]
    end: Literal["anchor", "untrusted_root", "dangling"]


# ---------------------------------------------------------------------------------------------------------------------
# Public entry point


def validate_chain(
    chain: Sequence[bytes],
    *,
    at_ns: int,
    server_name: str | None,
    server_ip: str | None,
    trust: TrustStore,
    intermediates: CertPool | None = None,
    purpose: Literal["server", "client"] = "server",
) -> ChainVerdict:
    """Judge a presented chain (chain[0] = leaf, the rest in any order) as of at_ns against `trust`."""
    if not chain:
        defect = Defect(
            "invalid", None, "", "the peer sent an empty Certificate message (no certificate at all)", "empty"
        )
        return ChainVerdict(status="invalid", detail=defect.detail, defects=(defect,), anchor_source=trust.label)
    with quiet():
        return _validate(chain, at_ns, server_name, server_ip, trust, intermediates, purpose)


def _validate(
    chain: Sequence[bytes],
    at_ns: int,
    server_name: str | None,
    server_ip: str | None,
    trust: TrustStore,
    intermediates: CertPool | None,
    purpose: Literal["server", "client"],
) -> ChainVerdict:
    defects: list[Defect] = []
    warnings: list[str] = []
    presented: list[_Cert] = []
    first_index: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    for index, raw in enumerate(chain):
        der = bytes(raw)
        sha = hashlib.sha256(der).hexdigest()
        if sha in first_index:
            repeats.setdefault(sha, [first_index[sha]]).append(index)
            continue
        first_index[sha] = index
        try:
            cert = load_certificate(der)
        except Exception as exc:
            who = "the leaf" if index == 0 else f"certificate #{index + 1} of the flight"
            defects.append(
                Defect(
                    "invalid",
                    0 if index == 0 else None,
                    sha,
                    f"{who} (sha256 {sha[:16]}) cannot be decoded: {exc}",
                    "undecodable",
                )
            )
            continue
        presented.append(_Cert(der, cert, describe(der), "server", index, "server"))
    for sha, positions in repeats.items():
        named = next((c.info.label for c in presented if c.info.sha256 == sha), f"sha256 {sha[:16]}")
        warnings.append(
            f"the peer sent '{named}' {len(positions)} times (positions {_and([str(p + 1) for p in positions])}): harmless, wasted bytes"
        )
    leaf = presented[0] if presented and presented[0].chain_index == 0 else None
    if leaf is None:
        return _verdict(defects, warnings, trust, None, None, None)

    search = _Search()
    server_pool = CertPool.build(((c.der, "server") for c in presented), "server")
    paths: list[_Path] = []
    _extend((leaf,), presented, server_pool, trust, intermediates, at_ns, search, paths)
    path = min(paths, key=lambda p: _score(p, at_ns))
    nodes = path.nodes

    defects += _trust_defects(path, trust, intermediates, search)
    defects += _time_defects(path, at_ns)
    sni_matches, host_defect = _hostname(leaf.info, server_name, server_ip) if purpose == "server" else (None, None)
    if host_defect is not None:
        defects.append(host_defect)
    defects += _crypto_defects(path)
    defects += _extension_defects(path, purpose)
    warnings += _warnings(path, presented, chain, search)

    anchor = nodes[-1] if path.end == "anchor" else None
    days = float(leaf.info.not_after_ns - at_ns) / _NS_PER_DAY if leaf.info.not_after_ns is not None else None
    verdict = _verdict(defects, warnings, trust, path, anchor, days)
    verdict = dataclasses.replace(verdict, sni_matches=sni_matches)
    if verdict.status == "ok":
        verdict = dataclasses.replace(verdict, detail=_ok_detail(path, at_ns))
    strict_ok, strict_detail = strict_opinion(
        leaf.der,
        [c.der for c in presented[1:]],
        at_ns=at_ns,
        server_name=server_name,
        server_ip=server_ip,
        trust=trust,
        purpose=purpose,
        ours=verdict.status,
    )
    return dataclasses.replace(verdict, strict_ok=strict_ok, strict_detail=strict_detail)


def _verdict(
    defects: list[Defect],
    warnings: list[str],
    trust: TrustStore,
    path: _Path | None,
    anchor: _Cert | None,
    days: float | None,
) -> ChainVerdict:
    ordered = sorted(
        defects, key=lambda d: (_RANK.get(d.kind, len(_RANK)), d.position if d.position is not None else 99)
    )
    if ordered:
        status = ordered[0].code
        others = []
        for d in ordered[1:]:
            if d.code != status and d.code not in others:
                others.append(d.code)
        detail = ordered[0].detail + (f" (also: {', '.join(others)})" if others else "")
    else:
        status, detail = "ok", "ok"
    return ChainVerdict(
        status=status,
        detail=detail,
        defects=tuple(ordered),
        warnings=tuple(warnings),
        days_to_expiry=days,
        path=tuple(n.info.sha256 for n in path.nodes) if path else (),
        anchor=anchor.info.subject if anchor else None,
        anchor_source=anchor.source if anchor else trust.label,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Path building


def _extend(
    nodes: tuple[_Cert, ...],
    presented: list[_Cert],
    server_pool: CertPool,
    trust: TrustStore,
    intermediates: CertPool | None,
    at_ns: int,
    search: _Search,
    out: list[_Path],
) -> None:
    """Depth-first: paths from nodes[0] up, ending at an anchor, a self-signed non-anchor, or nowhere; stops at the
    first flawless path or when the work budget is spent (hostile flights)."""
    search.steps += 1
    if search.done or search.steps > MAX_STEPS:
        if not out:
            out.append(_Path(nodes, "dangling"))
        return
    current = nodes[-1]
    anchor_index = trust.same_as(current.cert, current.der)
    if anchor_index is not None:
        anchor = _pool_cert(trust, anchor_index, "anchor")
        path = _Path((*nodes[:-1], anchor), "anchor")
        out.append(path)
        search.done = _score(path, at_ns)[:3] == (0, 0, 0)
        return
    if current.info.self_signed:
        out.append(_Path(nodes, "untrusted_root"))
        return
    found = False
    if len(nodes) < MAX_PATH:
        on_path = {n.info.sha256 for n in nodes}
        for candidate in _candidates(current, presented, server_pool, trust, intermediates):
            if candidate.info.sha256 in on_path or any(_twin(candidate, n) for n in nodes):
                continue  # no loops, also through a re-issued copy of a certificate already on the path
            if not _issued_by(current, candidate, search):
                continue
            found = True
            _extend((*nodes, candidate), presented, server_pool, trust, intermediates, at_ns, search, out)
    if not found:
        out.append(_Path(nodes, "dangling"))


def _same_key(a: _Cert, b: _Cert) -> bool:
    key = spki(a.cert)
    return bool(key) and key == spki(b.cert)


def _pool_cert(pool: CertPool, index: int, origin: Origin) -> _Cert:
    der = pool.ders[index]
    cert = pool.certs[index]
    return _Cert(der, cert, describe(der), origin, None, pool.sources[index])


def _candidates(
    child: _Cert, presented: list[_Cert], server_pool: CertPool, trust: TrustStore, intermediates: CertPool | None
) -> list[_Cert]:
    """Possible issuers of child: those the server sent, then anchors, then the --intermediates pool."""
    aki = bytes.fromhex(child.info.aki) if child.info.aki else None
    out: list[_Cert] = [presented[i] for i in server_pool.issuer_candidates(child.cert, aki)]
    out += [_pool_cert(trust, i, "anchor") for i in trust.issuer_candidates(child.cert, aki)]
    if intermediates is not None:
        out += [_pool_cert(intermediates, i, "intermediates") for i in intermediates.issuer_candidates(child.cert, aki)]
    return out


def _issued_by(child: _Cert, issuer: _Cert, search: _Search) -> bool:
    """Whether issuer signed child (cached); a same-name non-signer is remembered for the detail."""
    key = (child.info.sha256, issuer.info.sha256)
    if key not in search.verified:
        if search.checks >= MAX_SIGNATURE_CHECKS:
            return False
        search.checks += 1
        outcome = verify_issued(child.cert, issuer.cert, child.der)
        error: str | None = None if outcome == "ok" else outcome
        if outcome.startswith("unverifiable"):
            search.unverifiable.append(
                f"the signature of '{child.info.label}' by '{issuer.info.label}' could not be checked "
                f"({outcome.removeprefix('unverifiable: ')}); that link rests on the names alone"
            )
            error = None
        search.verified[key] = error
        if error == "signature" and loose_name_key(child.cert.issuer) == loose_name_key(issuer.cert.subject):
            search.rejected.setdefault(child.info.sha256, []).append(issuer)
    return search.verified[key] is None


def _score(path: _Path, at_ns: int) -> tuple[int, int, int, int]:
    """Lower is better: reaches an anchor, uses fewer certificates the server did not send, fewer out-of-date
    certificates, is shorter."""
    end = {"anchor": 0, "untrusted_root": 1, "dangling": 2}[path.end]
    borrowed = sum(1 for n in path.nodes if n.origin == "intermediates")
    stale = sum(1 for n in path.nodes if not _in_time(n.info, at_ns))
    return end, borrowed, stale, len(path.nodes)


def _in_time(info: CertInfo, at_ns: int) -> bool:
    nb, na = info.not_before_ns, info.not_after_ns
    return nb is not None and na is not None and nb <= at_ns <= na


# ---------------------------------------------------------------------------------------------------------------------
# Defects


def _role(path: _Path, position: int) -> str:
    node = path.nodes[position]
    if position == 0:
        return f"leaf {node.info.label}"
    if position == len(path.nodes) - 1 and path.end == "anchor":
        return f"trust anchor '{node.info.label}'"
    if position == len(path.nodes) - 1 and path.end == "untrusted_root":
        return f"root '{node.info.label}'"
    return f"intermediate '{node.info.label}'"


def _issued_what(path: _Path, position: int) -> str:
    """How a sentence names the certificate below `position` on the path: 'the leaf' or 'CN=...'."""
    child = path.nodes[position - 1]
    return f"the leaf ({child.info.label})" if position == 1 else f"'{child.info.label}'"


def _trust_defects(path: _Path, trust: TrustStore, intermediates: CertPool | None, search: _Search) -> list[Defect]:
    out: list[Defect] = []
    nodes = path.nodes
    for position, node in enumerate(nodes):
        if node.origin == "intermediates":
            out.append(
                Defect(
                    "chain_incomplete",
                    position,
                    node.info.sha256,
                    f"the server did not send the intermediate '{node.info.label}' that issued {_issued_what(path, position)}; "
                    f"the --intermediates bundle has it ({node.source})",
                    "chain_incomplete",
                )
            )
    last = nodes[-1]
    if path.end == "untrusted_root":
        same_name = [i for i in trust.subjects_named(last.cert.subject)]
        hint = f"; the store has a '{last.info.label}' but with a different key" if same_name else ""
        if len(nodes) == 1:
            out.append(
                Defect(
                    "self_signed",
                    0,
                    last.info.sha256,
                    f"the leaf {last.info.label} is self-signed and not a trust anchor ({trust.label}){hint}; "
                    "add it with --ca-bundle if it is expected",
                    "self_signed",
                )
            )
        else:
            out.append(
                Defect(
                    "untrusted_root",
                    len(nodes) - 1,
                    last.info.sha256,
                    f"chain ends at '{last.info.label}' which is not a trust anchor ({trust.label}){hint}",
                    "untrusted_root",
                )
            )
    elif path.end == "dangling":
        issuer_cn = last.info.issuer_cn
        issuer_name = f"CN={issuer_cn}" if issuer_cn else (last.info.issuer or "(empty name)")
        nowhere = (
            f"neither the trust store ({trust.label}) nor the --intermediates bundle ({intermediates.label}) has it"
            if intermediates is not None
            else f"no bundle has it (trust store {trust.label}; no --intermediates bundle given)"
        )
        rejected = search.rejected.get(last.info.sha256)
        note = ""
        if rejected:
            origin = "the server sent" if rejected[0].origin == "server" else f"{rejected[0].source} has"
            note = (
                f"; {origin} a certificate named '{rejected[0].info.label}' (sha256 {rejected[0].info.sha256[:16]}) "
                "but its key did not sign it (a renewed or wrong intermediate)"
            )
        elif last.info.self_issued and not last.info.self_signed:
            note = "; it names itself as issuer but its self-signature does not verify"
        if len(nodes) > 1 and last.info.is_ca and not rejected:
            # The server sent a CA whose issuer nobody has: most often a root missing from this store (a private
            # root, or one removed since the capture), which is what a client reports as unknown_ca.
            detail = (
                f"chain ends at '{last.info.label}', issued by '{issuer_name}' which is neither sent nor a trust anchor "
                f"({trust.label}); if '{issuer_name}' is a root (private, or removed from the store since the capture) "
                "add it with --ca-bundle, if it is an intermediate the server must send it"
            )
            out.append(Defect("untrusted_root", len(nodes) - 1, last.info.sha256, detail + note, "untrusted_root"))
        else:
            what = f"the leaf ({last.info.label})" if len(nodes) == 1 else f"'{last.info.label}'"
            detail = f"the server did not send the intermediate '{issuer_name}' that issued {what}; {nowhere}{note}"
            out.append(Defect("chain_incomplete", len(nodes) - 1, last.info.sha256, detail, "chain_incomplete"))
    return out


def _time_defects(path: _Path, at_ns: int) -> list[Defect]:
    out: list[Defect] = []
    for position, node in enumerate(path.nodes):
        info = node.info
        if info.not_after_ns is not None and at_ns > info.not_after_ns:
            out.append(
                Defect(
                    "expired",
                    position,
                    info.sha256,
                    f"{_role(path, position)} expired {iso(info.not_after_ns)}, {span(at_ns - info.not_after_ns)} before the capture",
                    "expired",
                )
            )
        if info.not_before_ns is not None and at_ns < info.not_before_ns:
            out.append(
                Defect(
                    "not_yet_valid",
                    position,
                    info.sha256,
                    f"{_role(path, position)} is not valid until {iso(info.not_before_ns)}, {span(info.not_before_ns - at_ns)} "
                    "after the capture (clock skew or a premature deployment)",
                    "not_yet_valid",
                )
            )
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def dns_matches(pattern: str, host: str) -> bool:
    """RFC 6125 as browsers apply it: case-insensitive, trailing dot ignored, A-labels compared as they are; a
    wildcard only as the whole left-most label, standing for exactly one non-empty label, never in the last two."""
    pattern = pattern.strip().rstrip(".").lower()
    host = host.strip().rstrip(".").lower()
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    labels = pattern.split(".")
    if labels[0] != "*" or any("*" in label for label in labels[1:]) or len(labels) < 3:
        return False  # partial-label ('f*.example.com'), non-left-most or too-broad ('*.com') wildcards
    host_labels = host.split(".")
    return len(host_labels) == len(labels) and bool(host_labels[0]) and host_labels[1:] == labels[1:]


def _names_list(info: CertInfo, limit: int = 8) -> str:
    names = [f"DNS:{n}" for n in info.san_dns] + [f"IP:{n}" for n in info.san_ip]
    if not names:
        return "no DNS or IP subjectAltName"
    shown = ", ".join(names[:limit])
    return shown + (f", and {len(names) - limit} more" if len(names) > limit else "")


def _hostname(info: CertInfo, server_name: str | None, server_ip: str | None) -> tuple[bool | None, Defect | None]:
    """(sni_matches, defect or None) for the leaf."""
    label = f"leaf {info.label}"
    if server_name is not None and server_name.strip():
        ip = _ip(server_name)
        if ip is not None:
            matched = any(_ip(s) == ip for s in info.san_ip)
            wanted = f"SNI {server_name} (an IP address)"
        else:
            matched = any(dns_matches(p, server_name) for p in info.san_dns)
            wanted = f"SNI {server_name}"
    elif server_ip is not None and _ip(server_ip) is not None:
        ip = _ip(server_ip)
        matched = any(_ip(s) == ip for s in info.san_ip)
        wanted = f"no SNI was sent, and the server address {server_ip}"
    else:
        return None, None
    if matched:
        return True, None
    if not info.has_san:
        cn = info.subject_cn
        target = server_name if server_name is not None and server_name.strip() else server_ip or ""
        cn_match = cn is not None and (dns_matches(cn, target) or (_ip(cn) is not None and _ip(cn) == _ip(target)))
        if cn_match:
            detail = (
                f"{label} has no subjectAltName: {wanted} only matches its CN, which browsers, Go and Java ignore "
                "(OpenSSL-based clients still accept it); reissue it with a subjectAltName"
            )
        else:
            only = f"only CN={cn}, which browsers ignore anyway" if cn else "and no CN either"
            detail = f"{wanted} is not covered by {label}, which has no subjectAltName ({only})"
    else:
        detail = f"{wanted} is not covered by the certificate's names ({_names_list(info)})"
    return False, Defect("hostname_mismatch", 0, info.sha256, detail, "hostname_mismatch")


def _crypto_defects(path: _Path) -> list[Defect]:
    out: list[Defect] = []
    last = len(path.nodes) - 1
    for position, node in enumerate(path.nodes):
        info = node.info
        bits = info.key_bits
        minimum = {"RSA": MIN_RSA_BITS, "DSA": MIN_DSA_BITS, "EC": MIN_EC_BITS}.get(info.key_type or "")
        if minimum is not None and bits is not None and bits < minimum:
            curve = f" ({info.curve})" if info.curve else ""
            out.append(
                Defect(
                    "weak_key",
                    position,
                    info.sha256,
                    f"{_role(path, position)} has a {bits}-bit {info.key_type} key{curve}, below {minimum} bits "
                    "(OpenSSL at security level 2, e.g. Debian's, rejects it)",
                    "weak_key",
                )
            )
        terminal_self_signed = position == last and path.end in ("anchor", "untrusted_root") and info.self_signed
        if position == last and path.end == "anchor":
            continue  # the anchor's own signature is never checked by clients
        if terminal_self_signed:
            continue
        if info.signature_hash in WEAK_HASHES:
            out.append(
                Defect(
                    "weak_signature",
                    position,
                    info.sha256,
                    f"{_role(path, position)} is signed with {info.signature_algorithm} ({_HASH_NAMES.get(info.signature_hash or '', '?')}), "
                    "which browsers and current OpenSSL reject",
                    "weak_signature",
                )
            )
    return out


def _extension_defects(path: _Path, purpose: Literal["server", "client"]) -> list[Defect]:
    out: list[Defect] = []
    wanted = "serverAuth" if purpose == "server" else "clientAuth"
    nodes = path.nodes
    last = len(nodes) - 1
    for position, node in enumerate(nodes):
        info = node.info
        role = _role(path, position)
        is_anchor = position == last and path.end == "anchor"
        if info.extension_error:
            out.append(
                Defect(
                    "invalid",
                    position,
                    info.sha256,
                    f"{role} has extensions that cannot be decoded: {info.extension_error}",
                    "bad_extensions",
                )
            )
        if position > 0:
            child = _issued_what(path, position)
            legacy_root = not info.has_basic_constraints and info.version == 1 and info.self_signed
            if not info.is_ca and not legacy_root:
                why = "basicConstraints CA:FALSE" if info.has_basic_constraints else "no basicConstraints extension"
                out.append(
                    Defect("invalid", position, info.sha256, f"{role} issued {child} but is not a CA ({why})", "not_ca")
                )
            if info.path_length is not None:
                below = sum(1 for n in nodes[1:position] if not n.info.self_issued)
                if below > info.path_length:
                    out.append(
                        Defect(
                            "invalid",
                            position,
                            info.sha256,
                            f"{role} allows {info.path_length} intermediate(s) below it (pathLenConstraint) but the path has {below}",
                            "path_length",
                        )
                    )
            if info.key_usage is not None and "keyCertSign" not in info.key_usage:
                usages = ", ".join(info.key_usage) or "none"
                out.append(
                    Defect(
                        "invalid",
                        position,
                        info.sha256,
                        f"{role} issued {child} but its keyUsage lacks keyCertSign ({usages})",
                        "key_usage",
                    )
                )
        if (
            position == 0
            and info.key_usage is not None
            and not {"digitalSignature", "keyEncipherment"} & set(info.key_usage)
        ):
            # a TLS peer signs the handshake (ECDHE, TLS 1.3) or decrypts the key exchange (RSA) with its key
            usages = ", ".join(info.key_usage) or "none"
            out.append(
                Defect(
                    "invalid",
                    0,
                    info.sha256,
                    f"{role} cannot be used by a TLS {purpose}: its keyUsage ({usages}) has neither digitalSignature "
                    "nor keyEncipherment" + (" (and it is a CA certificate, CA:TRUE)" if info.is_ca else ""),
                    "key_usage",
                )
            )
        if not is_anchor and info.extended_key_usage is not None:
            ekus = info.extended_key_usage
            if wanted not in ekus and "anyExtendedKeyUsage" not in ekus:
                out.append(
                    Defect(
                        "invalid",
                        position,
                        info.sha256,
                        f"{role} is only for {', '.join(ekus) or 'no purpose'} (extendedKeyUsage), not {wanted}",
                        "extended_key_usage",
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Warnings and the ok sentence


def _warnings(path: _Path, presented: list[_Cert], chain: Sequence[bytes], search: _Search) -> list[str]:
    out: list[str] = list(dict.fromkeys(search.unverifiable))
    nodes = path.nodes
    sent_for: dict[int, int] = {}  # path position -> chain index of the certificate the server sent for it
    used: set[int] = set()
    for position, node in enumerate(nodes):
        if node.chain_index is not None:
            sent_for[position] = node.chain_index
            used.add(node.chain_index)
        elif node.origin == "anchor":
            twin = next(
                (c for c in presented if c.chain_index not in used and _twin(c, node)),
                None,
            )
            if twin is not None and twin.chain_index is not None:
                sent_for[position] = twin.chain_index
                used.add(twin.chain_index)
                out.append(
                    f"the server sent the trust anchor '{node.info.label}' itself (harmless: clients use their own copy)"
                )
    indexes = [sent_for[p] for p in sorted(sent_for)]
    if indexes != sorted(indexes):
        order = ", ".join(
            f"'{c.info.label}'" for c in sorted(presented, key=lambda c: c.chain_index or 0) if c.chain_index in used
        )
        out.append(
            f"the server sent the chain out of order ({order}); TLS 1.2 requires each certificate to be followed by "
            "its issuer, though most clients reorder"
        )
    for cert in presented:
        if cert.chain_index is not None and cert.chain_index not in used:
            out.append(
                f"the server sent '{cert.info.label}' (certificate #{cert.chain_index + 1}) which is not on the path "
                f"{'to the trust anchor' if path.end == 'anchor' else 'built from the leaf'} (unneeded)"
            )
    for position, node in enumerate(nodes):
        for note in node.info.der_notes:
            out.append(f"{_role(path, position)}: {note}, which browsers tolerate and strict parsers reject")
    leaf = nodes[0].info
    if leaf.is_ca and len(nodes) > 1:
        out.append(
            f"leaf {leaf.label} has basicConstraints CA:TRUE (Firefox rejects a CA certificate used as an end entity)"
        )
    del chain
    return out


def _twin(sent: _Cert, anchor: _Cert) -> bool:
    return sent.info.sha256 == anchor.info.sha256 or (
        sent.info.subject == anchor.info.subject and _same_key(sent, anchor)
    )


def _ok_detail(path: _Path, at_ns: int) -> str:
    nodes = path.nodes
    leaf = nodes[0].info
    anchor = nodes[-1]
    until = leaf.not_after_ns
    left = f"; it expires {iso(until)}, {span(until - at_ns)} after the capture" if until is not None else ""
    return f"leaf {leaf.label} chains to the trust anchor '{anchor.info.label}' ({anchor.source}) in {len(nodes)} certificate(s){left}"


def _and(values: list[str]) -> str:
    return ", ".join(values[:-1]) + " and " + values[-1] if len(values) > 1 else "".join(values)


# ---------------------------------------------------------------------------------------------------------------------
# The strict second opinion


_CERT_REPR = re.compile(r"<Certificate\(subject=<Name\((.*?)\)>, \.\.\.\)>")


def strict_opinion(
    leaf_der: bytes,
    intermediate_ders: Sequence[bytes],
    *,
    at_ns: int,
    server_name: str | None,
    server_ip: str | None,
    trust: TrustStore,
    purpose: Literal["server", "client"],
    ours: str,
) -> tuple[bool | None, str | None]:
    """(strict_ok, strict_detail) from cryptography's RFC 5280 / CA-B Forum verifier; never raises."""
    try:
        from cryptography.x509.verification import PolicyBuilder, VerificationError
    except Exception:  # pragma: no cover - cryptography < 42
        return None, "the strict verifier is not available in this cryptography version"
    if trust.strict_store is None:
        return None, "the strict verifier was not run: no trust anchors"
    parsed: list[x509.Certificate] = []
    for number, raw in enumerate([leaf_der, *intermediate_ders]):
        try:
            with quiet():
                parsed.append(x509.load_der_x509_certificate(raw))
        except Exception as exc:
            what = "the leaf" if number == 0 else f"certificate #{number + 1}"
            error = f"it cannot parse {what} ({exc})"
            if ours == "ok":
                return False, f"fails the strict RFC 5280 profile (cryptography): {error}; browsers likely accept"
            return False, f"the strict RFC 5280 profile (cryptography) also rejects it: {error}"
    leaf, intermediates = parsed[0], parsed[1:]
    try:
        when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=at_ns // 1000)
        builder = PolicyBuilder().store(trust.strict_store).time(when)
        if purpose == "client":
            builder.build_client_verifier().verify(leaf, list(intermediates))
        else:
            subject: x509.DNSName | x509.IPAddress
            ip = _ip(server_name) if server_name else None
            if server_name and ip is None:
                subject = x509.DNSName(server_name.strip().rstrip("."))
            elif ip is not None:
                subject = x509.IPAddress(ip)
            elif server_ip and _ip(server_ip) is not None:
                address = _ip(server_ip)
                assert address is not None
                subject = x509.IPAddress(address)
            else:
                return None, "the strict verifier was not run: no SNI and no server address to check the leaf against"
            builder.build_server_verifier(subject).verify(leaf, list(intermediates))
    except VerificationError as exc:
        error = _CERT_REPR.sub(lambda m: f"'{m.group(1)}'", str(exc)).removeprefix("validation failed: ")
        if ours == "ok":
            return False, f"fails the strict RFC 5280 profile (cryptography): {error}; browsers likely accept"
        return False, f"the strict RFC 5280 profile (cryptography) also rejects it: {error}"
    except Exception as exc:
        return None, f"the strict verifier could not run: {type(exc).__name__}: {exc}"
    if ours != "ok":
        return True, f"passes the strict RFC 5280 profile (cryptography) although ours found {ours}"
    return True, None
