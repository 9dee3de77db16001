"""Plots: no warnings on samples, one connection, nothing, 100,000 connections; fixed cause colours; literal text."""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from conftest import SAMPLES
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import analyzer
from analyzer import plot, schema
from analyzer.diagnose.causes import Cause
from analyzer.result import AnalysisResult

ROOT_CA = [SAMPLES / "gen" / "pki" / "root.pem"]


def empty_capture(path: Any) -> Any:
    """A pcap with only ARP and UDP: no TLS at all."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    pkts = [Ether() / ARP(pdst="10.0.0.2"), Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=53) / b"q"]
    for i, p in enumerate(pkts):
        p.time = 1_790_000_000 + i
    wrpcap(str(path), pkts)
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnalysisResult]:
    empty = empty_capture(tmp_path_factory.mktemp("empty") / "arp-udp.pcap")
    return {
        "incident": analyzer.analyze(SAMPLES / "incident-mixed.pcapng", ca_bundle=ROOT_CA),
        "hostile": analyzer.analyze(SAMPLES / "hostile-strings.pcap"),
        "one": analyzer.analyze(SAMPLES / "tcp-timeout.pcap"),
        "empty": analyzer.analyze(empty),
    }


PLOTS: dict[str, Callable[..., Axes]] = {
    "failures_over_time": plot.plot_failures_over_time,
    "certificate_validity": plot.plot_certificate_validity,
    "handshake_latency": plot.plot_handshake_latency,
    "versions": plot.plot_versions,
    "ciphers": plot.plot_ciphers,
    **{f"top_failing_{by}": (lambda r, by=by, **kw: plot.plot_top_failing(r, by=by, **kw)) for by in plot.GROUPINGS},
}


def render(draw: Callable[[Axes], object]) -> Axes:
    """Draw on a fresh Agg figure and rasterise it, turning any warning into an error."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = draw(ax)
        fig.savefig(io.BytesIO(), format="png", dpi=60)
    assert out is ax
    return ax


@pytest.mark.parametrize("name", PLOTS)
@pytest.mark.parametrize("which", ["incident", "hostile", "one", "empty"])
def test_plot_renders_without_warnings(results: dict[str, AnalysisResult], name: str, which: str) -> None:
    ax = render(lambda ax: PLOTS[name](results[which], ax=ax))
    assert ax.get_title()


def test_ladder_of_every_failed_cause(results: dict[str, AnalysisResult]) -> None:
    r = results["incident"]
    for cause, rows in r.failures.groupby("failure_cause"):
        cid = str(rows["conn_id"].iloc[0])
        ax = render(lambda ax, cid=cid: plot.plot_ladder(r, cid, ax=ax))
        assert cid in ax.get_title() and str(cause) in ax.get_title()
        texts = [t.get_text() for t in ax.texts]
        assert any(t.startswith("syn") or t.startswith("client_hello") for t in texts)
        n_events = int((r.events["conn_id"] == cid).sum())
        assert sum(1 for t in texts if t.lstrip().startswith("Δ")) == n_events - 1  # a Δt on every later event


def test_ladder_marks_the_alert(results: dict[str, AnalysisResult]) -> None:
    r = results["incident"]
    row = r.failures[r.failures["alert"].notna()].iloc[0]
    ax = render(lambda ax: plot.plot_ladder(r, str(row["conn_id"]), ax=ax))
    alert_texts = [t for t in ax.texts if t.get_text().startswith("alert")]
    assert alert_texts and alert_texts[0].get_color() == "#d62728"
    assert any(line.get_marker() == "X" for line in ax.lines)


def test_ladder_unknown_connection(results: dict[str, AnalysisResult]) -> None:
    with pytest.raises(KeyError):
        plot.plot_ladder(results["incident"], "Cnosuchconnection")


def test_ladder_and_titles_keep_wire_text_literal(results: dict[str, AnalysisResult]) -> None:
    r = results["hostile"]
    row = r.handshakes[r.handshakes["sni"] == "<b>x</b>.test"].iloc[0]
    ax = render(lambda ax: plot.plot_ladder(r, str(row["conn_id"]), ax=ax))
    assert any("<b>x</b>.test" in t.get_text() for t in ax.texts)
    assert plot.label("a $x^2$ b") == r"a \$x^2\$ b"  # never mathtext
    assert plot.label("x" * 100, 10) == "x" * 9 + "…"
    assert plot.label("\u202e\U0001f600") == "\\u202e\\u1f600"  # no missing glyph, no bidi trick
    assert plot.label(None) == "(none)"


def test_without_axes_a_figure_is_made(results: dict[str, AnalysisResult]) -> None:
    import matplotlib.pyplot as plt

    try:
        ax = plot.plot_failures_over_time(results["incident"])
        assert isinstance(ax, Axes) and ax.figure is not None
    finally:
        plt.close("all")


def test_time_axes_are_utc(results: dict[str, AnalysisResult]) -> None:
    ax = render(lambda ax: plot.plot_failures_over_time(results["incident"], ax=ax))
    assert ax.get_xlabel() == "time (UTC)"
    fmt = ax.xaxis.get_major_formatter()
    assert str(fmt._tz) == "UTC"  # type: ignore[attr-defined]
    lo, _hi = ax.get_xlim()
    first = results["incident"].first_ts_ns
    assert first is not None
    assert abs(lo - float(plot._num(first))) < 1 / 86400 * 60  # the axis starts at the capture's first minute


def test_every_cause_has_its_own_colour() -> None:
    assert set(plot.CAUSE_COLORS) == {c.value for c in Cause}
    assert len(set(plot.CAUSE_COLORS.values())) == len(plot.CAUSE_COLORS)
    assert plot.ESTABLISHED_COLOR not in plot.CAUSE_COLORS.values()


def test_same_cause_same_colour_in_every_plot(results: dict[str, AnalysisResult]) -> None:
    r = results["incident"]
    want = matplotlib.colors.to_rgba(plot.CAUSE_COLORS["cert_expired"])
    for draw in (plot.plot_failures_over_time, lambda r, ax: plot.plot_top_failing(r, by="server", ax=ax)):
        ax = render(lambda ax, draw=draw: draw(r, ax=ax))
        handles, labels = ax.get_legend_handles_labels()
        face = [
            (h.patches[0] if hasattr(h, "patches") else h).get_facecolor()
            for h, lab in zip(handles, labels, strict=True)
            if "cert_expired" in lab
        ]
        assert face and face[0] == want


def test_bad_grouping() -> None:
    with pytest.raises(ValueError, match="by must be one of"):
        plot.plot_top_failing(analyzer.analyze(SAMPLES / "tcp-refused.pcap"), by="nope")


def synthetic(n: int, seed: int = 7) -> AnalysisResult:
    """n connections over six hours, 200 servers, 5% failing with a spread of causes."""
    rng = np.random.default_rng(seed)
    start = 1_795_000_000 * 10**9
    ts = np.sort(start + rng.integers(0, 6 * 3600 * 10**9, n))
    causes = [c.value for c in Cause]
    failed = rng.random(n) < 0.05
    cols = schema.empty(schema.HANDSHAKES)
    cols["conn_id"] = [f"C{i:015d}" for i in range(n)]
    cols["ts"] = ts.tolist()
    cols["client_ip"] = [f"10.{i % 7}.{(i // 7) % 250}.{i % 250}" for i in range(n)]
    cols["server_ip"] = [f"192.0.2.{i % 200}" for i in range(n)]
    cols["client_port"] = (40000 + np.arange(n) % 20000).tolist()
    cols["server_port"] = [443] * n
    cols["sni"] = [f"svc{i % 200}.example" for i in range(n)]
    cols["version"] = [None if f else ("TLS 1.3" if i % 3 else "TLS 1.2") for i, f in enumerate(failed)]
    cols["cipher"] = [None if f else "TLS_AES_128_GCM_SHA256" for f in failed]
    cols["outcome"] = ["failed" if f else "established" for f in failed]
    cols["failure_cause"] = [causes[i % len(causes)] if f else None for i, f in enumerate(failed)]
    cols["ja4"] = [f"t13d1516h2_8daaf6152771_{i % 12:012x}" for i in range(n)]
    cols["handshake_ms"] = rng.gamma(2.0, 3.0, n).tolist()
    cols["duration_ms"] = cols["handshake_ms"]
    n_all = {c.name: cols[c.name] for c in schema.HANDSHAKES if cols[c.name]}
    full = {c.name: n_all.get(c.name, [None] * n) for c in schema.HANDSHAKES}
    tables = {name: schema.empty(columns) for name, columns in schema.TABLES.items()}
    tables["handshakes"] = full
    return AnalysisResult(tables, [], ["synthetic"], n * 12, int(ts[0]), int(ts[-1]))


@pytest.fixture(scope="module")
def big() -> AnalysisResult:
    r = synthetic(100_000)
    assert len(r.handshakes) == 100_000
    return r


@pytest.mark.parametrize("name", PLOTS)
def test_hundred_thousand_connections_stay_fast_and_readable(big: AnalysisResult, name: str) -> None:
    t = time.perf_counter()
    ax = render(lambda ax: PLOTS[name](big, ax=ax))
    elapsed = time.perf_counter() - t
    assert elapsed < 3, (name, elapsed)
    assert len(ax.patches) < 1000, name  # binned, never one artist per connection
    handles, _labels = ax.get_legend_handles_labels()
    assert len(handles) <= len(Cause) + 3, name
