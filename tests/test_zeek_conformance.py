"""Agreement with Zeek's ssl.log (an oracle we did not write) on the TLS-over-TCP conformance traces."""

from __future__ import annotations

import pytest
from conftest import ZEEK_TRACES
from zeek_oracle import compare, oracle

# Every disagreement must be listed here with its reason (none today on tls/).
KNOWN_DISAGREEMENTS: dict[str, str] = {}


def _tls_direct(trace: str) -> bool:
    return trace.startswith("tls/") and "starttls" not in trace and "dtls" not in trace


@pytest.mark.skipif(not ZEEK_TRACES.exists(), reason="../shared/conformance is not beside this checkout")
def test_agreement_with_zeek_on_tls_traces() -> None:
    exps = oracle(_tls_direct)
    assert len(exps) >= 40, "the oracle lost its rows"
    agree, total, problems = compare(exps)
    unexplained = [p for p in problems if p not in KNOWN_DISAGREEMENTS]
    assert not unexplained, "\n".join(unexplained)
    assert agree / total >= 0.99, f"{agree}/{total}"
    stale = set(KNOWN_DISAGREEMENTS) - set(problems)
    assert not stale, f"fixed, remove from KNOWN_DISAGREEMENTS: {sorted(stale)}"
