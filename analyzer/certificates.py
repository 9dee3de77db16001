"""The certificate stage: load trust, judge every presented chain as of its own connection's time,
share verdicts between connections to the same server, and describe each distinct certificate."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer import schema
from analyzer.diagnose.evidence import Evidence
from analyzer.tables import conn_id_of, endpoint_ip
from analyzer.tcp.flow import Flow

if TYPE_CHECKING:
    from analyzer.tls.messages import Certificate, CertificateStatus
    from analyzer.x509.judge import Judge
    from analyzer.x509.ocsp import OcspVerdict
    from analyzer.x509.validate import ChainVerdict

NS_PER_DAY = 86_400 * 10**9
TS_MAX = (1 << 63) - 1  # year-9999 certificates do not fit datetime64[ns]: shown as NaT


@dataclass(frozen=True, slots=True)
class TrustSettings:
    ca_bundle: list[str] = field(default_factory=list)
    system: bool = False
    intermediates: list[str] = field(default_factory=list)
    client_ca: list[str] = field(default_factory=list)


ServerKey = tuple[str, int, str | None]  # server address, port, SNI


@dataclass(slots=True)
class CertStage:
    judge: Judge | None = None
    trust_label: str = "not loaded (no certificates in the capture)"

    def describe_trust(self) -> dict[str, str]:
        return {"trust": self.trust_label}

    def certificates_table(
        self, seen: dict[str, tuple[bytes, int, int, int]], window: tuple[int, int], warnings: list[str]
    ) -> schema.Columns:
        """One row per distinct certificate: its facts, where the capture saw it, and how its validity
        relates to the capture window (operations teams alert 7 and 30 days before expiry)."""
        cols = schema.empty(schema.CERTIFICATES)
        if not seen:
            return cols
        from analyzer.x509.certs import describe

        for sha, (der, first, last, count) in seen.items():
            info = describe(der)
            row: dict[str, object] = {c: getattr(info, c, None) for c in cols}
            row.update(
                cert_sha256=sha,
                cert_sha1=info.sha1,
                der_bytes=len(der),
                first_seen=first,
                last_seen=last,
                connections=count,
                not_before=_ts(info.not_before_ns),
                not_after=_ts(info.not_after_ns),
                san_dns=",".join(info.san_dns) or None,
                san_ip=",".join(info.san_ip) or None,
                key_usage=",".join(info.key_usage) if info.key_usage is not None else None,
                extended_key_usage=",".join(info.extended_key_usage) if info.extended_key_usage is not None else None,
                ocsp_urls=",".join(info.ocsp_urls) or None,
                ca_issuers_urls=",".join(info.ca_issuers_urls) or None,
                crl_urls=",".join(info.crl_urls) or None,
                days_to_expiry=float(info.not_after_ns - first) / NS_PER_DAY if info.not_after_ns is not None else None,
                decode_error=info.decode_error or info.extension_error,
                expiry=_expiry(info.not_before_ns, info.not_after_ns, window),
            )
            if row["expiry"] in ("expired during the capture", "within 7 days"):
                warnings.append(
                    f"certificate {info.label} (sha256 {sha[:16]}...) {row['expiry']}: not after {_iso(info.not_after_ns)}"
                )
            for k in cols:
                cols[k].append(row.get(k))
        return cols


def _expiry(not_before: int | None, not_after: int | None, window: tuple[int, int]) -> str | None:
    start, end = window
    if not_after is None:
        return None
    if not_after < start:
        return "expired"
    if not_after <= end:
        return "expired during the capture"
    if not_before is not None and not_before > end:
        return "not yet valid"
    if not_after - end <= 7 * NS_PER_DAY:
        return "within 7 days"
    if not_after - end <= 30 * NS_PER_DAY:
        return "within 30 days"
    return None


def _iso(ns: int | None) -> str:
    from analyzer.result import iso

    return iso(ns)[:19] + "Z" if ns is not None else "?"


def _ts(ns: int | None) -> int | None:
    return ns if ns is not None and -TS_MAX <= ns <= TS_MAX else None


def server_key(flow: Flow) -> ServerKey:
    obs = flow.obs
    sni = obs.client_hello.sni if obs is not None and obs.client_hello is not None else None
    return server_key_of(flow.key, flow.client_dir or 0, sni)


def server_key_of(key: tuple[int, ...], client_dir: int, sni: str | None) -> ServerKey:
    return endpoint_ip(key, 1 - client_dir), (key[10] if client_dir == 0 else key[5]), sni


# one visible server chain, for connections to the same server whose chain is hidden: (connection
# order key, time, conn_id, leaf sha256, verdict, OCSP verdict)
Seen = tuple[tuple[int, int, int], int, str, str, "ChainVerdict", "OcspVerdict | None"]


class ChainJudging:
    """Judges the chains of connections met one at a time, in any order (the flows in memory, then
    those read back from the spill file); ``seen()`` gives the visible verdicts in row order."""

    def __init__(self, settings: TrustSettings, warnings: list[str], load: bool = False) -> None:
        # ``load``: load the trust store even if nothing here needs it (another group of files does)
        self.settings, self.warnings = settings, warnings
        self.stage = CertStage()
        self._seen: dict[ServerKey, list[Seen]] = {}
        if load or settings.ca_bundle:
            self._judge()

    def _judge(self) -> Judge:
        if self.stage.judge is not None:
            return self.stage.judge
        from analyzer.x509.judge import Judge
        from analyzer.x509.trust import load_intermediates, load_trust

        settings, warnings = self.settings, self.warnings
        trust, warns = load_trust(settings.ca_bundle, system=settings.system)
        warnings.extend(warns)
        pool = load_intermediates(settings.intermediates) if settings.intermediates else None
        if pool is not None:
            warnings.extend(pool.warnings)
        client_trust = None
        if settings.client_ca:
            client_trust, warns = load_trust(settings.client_ca, use_certifi=False)
            warnings.extend(warns)
        judge = Judge(trust, pool, client_trust)
        self.stage.judge, self.stage.trust_label = judge, trust.label
        return judge

    def add(self, flow: Flow, ev: Evidence) -> None:
        """Fill ``ev.cert_verdict`` / ``ocsp`` / ``client_cert_verdict`` for the chains this connection carried."""
        obs = flow.obs
        if obs is None:
            return
        ev.cert_verdict, ev.ocsp, ev.client_cert_verdict = self.judge(
            (flow.first_ts, flow.file_index, flow.first_frame),
            flow.key,
            server_key(flow),
            obs.server_certificate,
            obs.certificate_status,
            obs.client_certificate,
            obs.server_certificate_ts,
        )

    def judge(
        self,
        order: tuple[int, int, int],
        key: tuple[int, ...],
        skey: ServerKey,
        cert: Certificate | None,
        status: CertificateStatus | None,
        ccert: Certificate | None,
        cert_ts: int | None,
    ) -> tuple[ChainVerdict | None, OcspVerdict | None, ChainVerdict | None]:
        """The verdicts for one connection's chains (server, its OCSP staple, client), from the facts
        themselves (a spilled connection gives only these, analyzer/spill.py)."""
        has_server, has_client = cert is not None and bool(cert.entries), ccert is not None and bool(ccert.entries)
        if not (has_server or has_client):
            return None, None, None
        judge = self._judge()
        at = cert_ts or order[0]
        verdict: ChainVerdict | None = None
        ocsp: OcspVerdict | None = None
        client: ChainVerdict | None = None
        if has_server:
            assert cert is not None
            chain = cert.chain
            # Without SNI the address is checked against the IP SANs (RFC 6125); the diagnosis only blames a
            # mismatch on clients known to send SNI whenever they connect by name (rules.cert_finding).
            verdict = judge.verdict(chain, at, skey[2], skey[0] if skey[2] is None else None)
            if status is not None:
                ocsp = judge.ocsp(status.ocsp_response, chain, at)
            self._seen.setdefault(skey, []).append(
                (order, at, conn_id_of(key, order[0]), _sha(chain[0]), verdict, ocsp)
            )
        if has_client:
            assert ccert is not None
            client = judge.verdict(ccert.chain, at, None, None, purpose="client")
        return verdict, ocsp, client

    def seen(self) -> dict[ServerKey, list[Seen]]:
        return in_row_order(self._seen)


def in_row_order(seen: dict[ServerKey, list[Seen]]) -> dict[ServerKey, list[Seen]]:
    """Visible verdicts per server as a run over the connections in row order would list them."""
    return {k: sorted(v, key=lambda s: s[0]) for k, v in sorted(seen.items(), key=lambda kv: min(s[0] for s in kv[1]))}


def row_preparer(
    settings: TrustSettings, loaded: bool, label: str, first_ns: int, seen: dict[ServerKey, list[Seen]]
) -> Callable[[Flow, Evidence], None]:
    """What each connection's Evidence needs from the whole analysis before its diagnosis: whether the
    user named the anchors and the store is recent enough (once a store was loaded), and, when its own
    chain is hidden (TLS 1.3 without keys), the nearest verdict for the same server."""
    current = _store_is_current(label, first_ns) if loaded else True
    user = bool(settings.ca_bundle) or settings.system

    def prepare(flow: Flow, ev: Evidence) -> None:
        if loaded:
            ev.store_current = current
            ev.user_anchors = user
        if ev.cert_verdict is not None or flow.obs is None or flow.obs.server_hello is None:
            return
        near = seen.get(server_key(flow))
        if near:
            # the richest evidence first (a revoked staple is only sent to clients that ask), then the nearest in time
            _order, _at, cid, _leaf, verdict, ocsp = min(
                near, key=lambda n: (not (n[5] is not None and n[5].status == "revoked"), abs(n[1] - flow.first_ts))
            )
            ev.peer_verdict = (cid, verdict, ocsp)

    return prepare


STORE_HORIZON_NS = 2 * 365 * 86_400 * 10**9


def _store_is_current(label: str, capture_ns: int) -> bool:
    """certifi's version is its date: a capture more than two years older than the store may have
    used roots that have been removed since (design.md: current roots misjudge old captures)."""
    import datetime as dt
    import re

    m = re.search(r"certifi (\d{4})\.(\d{1,2})\.(\d{1,2})", label)
    if m is None:
        return True
    store = dt.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=dt.UTC)
    return capture_ns >= int(store.timestamp()) * 10**9 - STORE_HORIZON_NS


def _sha(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def rotations(seen: dict[ServerKey, list[Seen]], warnings: list[str]) -> None:
    """The same server presenting different leaf certificates during the capture."""
    from analyzer.result import iso

    for (ip, port, sni), items in seen.items():
        leaves: dict[str, tuple[int, int, str]] = {}
        for _order, at, cid, sha, _v, _o in sorted(items, key=lambda x: x[1]):
            first, _last, first_cid = leaves.get(sha, (at, at, cid))
            leaves[sha] = (first, at, first_cid)
        if len(leaves) > 1:
            spans = "; ".join(
                f"{sha[:16]}... from {iso(a)[:19]} to {iso(b)[:19]} (first {c})"
                for sha, (a, b, c) in sorted(leaves.items(), key=lambda x: x[1])
            )
            warnings.append(
                f"server {ip}:{port}{' SNI ' + sni if sni else ''} presented {len(leaves)} different leaf certificates: "
                f"{spans} (rotation, a stale load-balancer node, or interception)"
            )


__all__ = [
    "CertStage",
    "ChainJudging",
    "Seen",
    "TrustSettings",
    "in_row_order",
    "rotations",
    "row_preparer",
]
