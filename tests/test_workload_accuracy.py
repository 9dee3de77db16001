"""Accuracy on a capture the analyzer was never tuned on: samples/workload-mixed.pcap.

samples/workload.py made it: a seeded random mix of several hundred concurrent loopback connections from
seven client stacks (OpenSSL, curl, Python ssl, GnuTLS, Go, Node.js, Java), TLS 1.2 and 1.3, successes and
every failure kind they produce reliably. Its ground truth, samples/workload-mixed.labels.csv, says what each
client and server did (checked against the wire with the peers' key logs) and, for TLS 1.3, what a correct
analyzer can know without keys: every certificate scenario's server also serves TLS 1.2 clients in the
capture, so the certificate is never out of reach (failure-causes.md, confidence "inferred").

Run with ``-s`` to see the confusion matrix (intended class x analyzer class, "established" a class).
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import SAMPLES

import analyzer

CAPTURE = SAMPLES / "workload-mixed.pcap"
LABELS = SAMPLES / "workload-mixed.labels.csv"
PKI_ROOT = SAMPLES / "gen" / "pki" / "root.pem"
MIN_ACCURACY = 0.99
KEY = ["client_port", "server_port"]


def _class(outcome: object, cause: object) -> str:
    if not isinstance(outcome, str):
        return "(no row)"
    if outcome == "failed":
        return cause if isinstance(cause, str) and cause else "failed (no cause)"
    return outcome


@pytest.fixture(scope="module")
def joined() -> pd.DataFrame:
    labels = pd.read_csv(LABELS, dtype=str, keep_default_na=False)
    labels[KEY] = labels[KEY].astype(int)
    hs = analyzer.analyze(CAPTURE, ca_bundle=[PKI_ROOT]).handshakes.copy()
    hs[KEY] = hs[KEY].astype(int)
    cols = [*KEY, "conn_id", "outcome", "failure_cause", "failure_detail", "confidence", "rule", "version"]
    m = labels.merge(hs[cols], on=KEY, how="outer", indicator=True)
    m["intended"] = [
        _class(o, c) if m_ != "right_only" else "(no label)"
        for o, c, m_ in zip(m.intended_outcome, m.intended_cause, m._merge, strict=True)
    ]
    m["got"] = [_class(o, c) for o, c in zip(m.outcome, m.failure_cause, strict=True)]
    m["correct"] = m.intended == m.got
    return m


def confusion_matrix(m: pd.DataFrame) -> str:
    """Rows: intended class; columns (numbered, legend below): the analyzer's class."""
    order = sorted(set(m.intended) | set(m.got), key=lambda c: (c != "established", c))
    cols = [c for c in order if c in set(m.got)]
    rows = [c for c in order if c in set(m.intended)]
    tab = pd.crosstab(m.intended, m.got).reindex(index=rows, columns=cols, fill_value=0)
    num = {c: str(i + 1) for i, c in enumerate(cols)}
    width = max(len(r) for r in rows) + 2
    lines = [" " * width + " ".join(f"{num[c]:>4}" for c in cols) + "   total  correct"]
    for r in rows:
        cells = " ".join(f"{(tab.at[r, c] or '.')!s:>4}" for c in cols)
        ok = int(tab.at[r, r]) if r in cols else 0
        lines.append(f"{r:<{width}}{cells}   {int(tab.loc[r].sum()):>5}  {ok:>7}")
    lines.append("columns: " + ", ".join(f"{num[c]}={c}" for c in cols))
    return "\n".join(lines)


def _wrong(m: pd.DataFrame) -> str:
    bad = m[~m.correct]
    return "\n".join(
        f"  {r.conn_id} :{r.client_port}->{r.server_port} {r.scenario} {r.client} TLS {r.tls_version}: "
        f"intended {r.intended}, analyzer {r.got} ({r.rule}, {r.confidence}): {r.failure_detail}"
        for r in bad.itertuples()
    )


def test_labels_and_rows_match_one_to_one(joined: pd.DataFrame) -> None:
    assert len(joined) >= 550
    assert not joined.duplicated(KEY).any(), "a (client_port, server_port) pair occurs twice"
    no_row = joined[joined._merge == "left_only"]
    no_label = joined[joined._merge == "right_only"]
    assert no_row.empty, f"labelled connections without an analyzer row:\n{no_row[[*KEY, 'scenario']]}"
    assert no_label.empty, f"analyzer rows without a label:\n{no_label[[*KEY, 'conn_id', 'got']]}"


def test_accuracy(joined: pd.DataFrame) -> None:
    acc = joined.correct.mean()
    print(f"\n{len(joined)} connections, {int(joined.correct.sum())} with the intended outcome and cause: {acc:.2%}")
    print(confusion_matrix(joined))
    if not joined.correct.all():
        print("disagreements:\n" + _wrong(joined))
    assert acc >= MIN_ACCURACY, f"accuracy {acc:.2%} < {MIN_ACCURACY:.0%}:\n{_wrong(joined)}"


def test_established_stays_established(joined: pd.DataFrame) -> None:
    est = joined[joined.intended == "established"]
    assert len(est) > 100
    assert (est.got == "established").all(), _wrong(est)


def test_every_failed_row_has_a_detail(joined: pd.DataFrame) -> None:
    failed = joined[joined.outcome == "failed"]
    assert len(failed) > 300
    missing = failed[~failed.failure_detail.map(lambda d: isinstance(d, str) and bool(d.strip()))]
    assert missing.empty, f"failed rows without failure_detail:\n{missing[[*KEY, 'conn_id', 'got']]}"
