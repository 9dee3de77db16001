"""Per-analysis verdict cache: each distinct chain is judged once per stretch of time in which no
certificate on it starts or stops being valid, then re-dated for every connection that sent it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from analyzer.x509.certs import describe
from analyzer.x509.ocsp import OcspVerdict, check_stapled
from analyzer.x509.trust import CertPool, TrustStore
from analyzer.x509.validate import ChainVerdict, validate_chain

NS_PER_DAY = 86_400 * 10**9

Key = tuple[tuple[bytes, ...], str | None, str | None, str]


class Judge:
    """Validates chains as of each connection's own time, with a cache that never changes an answer."""

    def __init__(
        self, trust: TrustStore, intermediates: CertPool | None = None, client_trust: TrustStore | None = None
    ) -> None:
        self.trust = trust
        self.intermediates = intermediates
        self.client_trust = client_trust
        self._cache: dict[Key, list[tuple[int, int, ChainVerdict]]] = {}
        self.validations = 0

    def _bounds(self, chain: Sequence[bytes], verdict: ChainVerdict, at_ns: int) -> tuple[int, int]:
        """The stretch around ``at_ns`` in which no certificate involved changes validity."""
        edges: list[int] = []
        ders = list(chain)
        path = set(verdict.path)
        for der in ders:
            info = describe(der)
            path.discard(info.sha256)
            edges += [t for t in (info.not_before_ns, info.not_after_ns) if t is not None]
        for sha in path:  # anchors and borrowed intermediates on the path
            for store in (self.trust, self.intermediates, self.client_trust):
                index = store.by_sha256.get(sha) if store is not None else None
                if store is not None and index is not None:
                    info2 = describe(store.ders[index])
                    edges += [t for t in (info2.not_before_ns, info2.not_after_ns) if t is not None]
        lo = max((e for e in edges if e <= at_ns), default=-(1 << 62))
        hi = min((e for e in edges if e > at_ns), default=1 << 62)
        return lo, hi

    def verdict(
        self,
        chain: Sequence[bytes],
        at_ns: int,
        server_name: str | None,
        server_ip: str | None,
        purpose: str = "server",
    ) -> ChainVerdict:
        key: Key = (tuple(chain), server_name, server_ip, purpose)
        for lo, hi, v in self._cache.get(key, ()):
            if lo <= at_ns < hi:
                return self._redate(chain, v, at_ns)
        trust = self.client_trust if purpose == "client" and self.client_trust is not None else self.trust
        v = validate_chain(
            chain,
            at_ns=at_ns,
            server_name=server_name,
            server_ip=server_ip,
            trust=trust,
            intermediates=self.intermediates,
            purpose="client" if purpose == "client" else "server",
        )
        self.validations += 1
        lo, hi = self._bounds(chain, v, at_ns)
        self._cache.setdefault(key, []).append((lo, hi, v))
        return v

    @staticmethod
    def _redate(chain: Sequence[bytes], v: ChainVerdict, at_ns: int) -> ChainVerdict:
        if not chain:
            return v
        leaf = describe(chain[0])
        if leaf.not_after_ns is None:
            return v
        return dataclasses.replace(
            v, days_to_expiry=float(leaf.not_after_ns - at_ns) / NS_PER_DAY
        )  # float first: same result compiled

    def ocsp(self, response: bytes, chain: Sequence[bytes], at_ns: int) -> OcspVerdict:
        issuer = chain[1] if len(chain) > 1 else None
        return check_stapled(response, chain[0], issuer, at_ns)
