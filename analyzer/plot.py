"""Plots of an AnalysisResult (matplotlib): every ``plot_<what>(result, ..., ax=None) -> Axes``; never plt.show()."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any, cast

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analyzer.diagnose.causes import Cause

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from analyzer.result import AnalysisResult

NS_PER_DAY = 86_400 * 10**9
NS_PER_S = 10**9

# One colour per cause, the same in every plot and report. Families share a hue:
# transport browns/olives, negotiation oranges/blues, server certificate reds/purples/pinks,
# mutual TLS cyans, late aborts greens, `other` indigo.
CAUSE_COLORS: dict[str, str] = {
    Cause.TCP_REFUSED: "#8c564b",
    Cause.TCP_TIMEOUT: "#c49c94",
    Cause.NO_CLIENT_HELLO: "#7f7f7f",
    Cause.CLIENT_SENT_PLAINTEXT: "#bcbd22",
    Cause.STARTTLS_REFUSED: "#dbdb8d",
    Cause.SERVER_NO_RESPONSE: "#ff7f0e",
    Cause.SERVER_RESET: "#ffbb78",
    Cause.SERVER_CLOSED: "#d94801",
    Cause.NON_TLS_SERVER: "#fdd0a2",
    Cause.PROTOCOL_VERSION: "#1f77b4",
    Cause.NO_SHARED_CIPHER: "#aec7e8",
    Cause.UNRECOGNIZED_NAME: "#08519c",
    Cause.NO_APPLICATION_PROTOCOL: "#6baed6",
    Cause.INAPPROPRIATE_FALLBACK: "#c6dbef",
    Cause.SERVER_REJECTED_HELLO: "#3f007d",
    Cause.CERT_EXPIRED: "#d62728",
    Cause.CERT_NOT_YET_VALID: "#ff9896",
    Cause.CERT_HOSTNAME_MISMATCH: "#9467bd",
    Cause.CERT_SELF_SIGNED: "#c5b0d5",
    Cause.CERT_UNTRUSTED_ROOT: "#e377c2",
    Cause.CERT_CHAIN_INCOMPLETE: "#f7b6d2",
    Cause.CERT_REVOKED: "#67000d",
    Cause.CERT_WEAK: "#ad494a",
    Cause.CERT_INVALID: "#7b4173",
    Cause.CERT_REJECTED_UNKNOWN: "#de9ed6",
    Cause.CLIENT_CERT_MISSING: "#17becf",
    Cause.CLIENT_CERT_REJECTED: "#9edae5",
    Cause.CLIENT_ABORTED: "#637939",
    Cause.SERVER_ABORTED: "#b5cf6b",
    Cause.OTHER: "#393b79",
}
ESTABLISHED_COLOR = "#bdbdbd"
INCOMPLETE_COLOR = "#525252"
UNKNOWN_CAUSE_COLOR = "#000000"  # a cause code added to the vocabulary after this table was written

VERSION_ORDER = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
VERSION_COLORS: dict[str, str] = {
    "SSL 2.0": "#67000d",
    "SSL 3.0": "#a50f15",
    "TLS 1.0": "#ef3b2c",
    "TLS 1.1": "#fc9272",
    "TLS 1.2": "#6baed6",
    "TLS 1.3": "#08519c",
}
OTHER_COLOR = "#d9d9d9"
EXPIRY_COLORS: dict[str, str] = {
    "expired": "#d62728",
    "expired during the capture": "#d62728",
    "within 7 days": "#ff7f0e",
    "within 30 days": "#ffd92f",
    "not yet valid": "#9467bd",
    "": "#74c476",
}
NICE_BINS_S = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)
PERCENTILES = ((50, "-", "o"), (90, "--", "s"), (99, ":", "^"))


def cause_color(cause: str) -> str:
    """The fixed colour of a failure cause (black for a code this module does not know yet)."""
    return CAUSE_COLORS.get(cause, UNKNOWN_CAUSE_COLOR)


def label(value: object, limit: int = 48) -> str:
    """Text from the wire made safe for a matplotlib label: no mathtext, no missing glyphs, bounded length."""
    if _isna(value):
        return "(none)"
    out = []
    for ch in str(value):
        if ch == "$":
            out.append(r"\$")  # '$...$' would be parsed as mathtext
        elif ch.isprintable() and ord(ch) < 0x250:
            out.append(ch)
        elif ch in "\n\r\t":
            out.append(" ")
        else:
            out.append(f"\\u{ord(ch):04x}")
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _isna(value: Any) -> bool:
    """None, NA, NaN, NaT (a scalar)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # only when the caller did not bring axes (notebooks)

    _fig, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _legend(ax: Axes, handles: list[Any], x: float = 1.01) -> None:
    """Legend outside the axes on the right, in as many columns as keep it no taller than about 12 entries."""
    ncol = max(1, -(-len(handles) // 12))
    size = "small" if len(handles) <= 12 else "x-small"
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(x, 1.0), fontsize=size, frameon=False, ncols=ncol)


def _empty(ax: Axes, title: str, message: str) -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#636363")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _ns(series: pd.Series) -> np.ndarray:
    """int64 nanoseconds since the epoch of a datetime64[ns, UTC] column (NaT as the int64 minimum)."""
    return np.asarray(series.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64))


def _num(ns: np.ndarray | int) -> Any:
    """matplotlib date numbers (days since 1970-01-01 UTC) from integer nanoseconds."""
    return mdates.date2num(np.asarray(ns, dtype="int64").astype("datetime64[ns]"))  # type: ignore[no-untyped-call]


def _time_axis(ax: Axes, axis: str = "x") -> None:
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    formatter = mdates.ConciseDateFormatter(locator, tz=UTC)  # type: ignore[no-untyped-call]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(locator)
    target.set_major_formatter(formatter)
    if axis == "x":
        ax.set_xlabel("time (UTC)")


def human_duration(seconds: float) -> str:
    """'5 s', '10 min', '2 h', '1 d'."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


def time_bins(start_ns: int, end_ns: int, max_bins: int = 60, bin_seconds: float | None = None) -> np.ndarray:
    """Edges (int64 ns) of equal bins covering [start, end], a round width giving at most ``max_bins`` bins."""
    span = max(1, end_ns - start_ns)
    if bin_seconds is not None:
        width = max(1, int(bin_seconds * NS_PER_S))
    else:
        width = NICE_BINS_S[-1] * NS_PER_S
        for s in NICE_BINS_S:
            if span / (s * NS_PER_S) <= max_bins:
                width = s * NS_PER_S
                break
        else:
            width = int(np.ceil(span / max_bins / (86400 * NS_PER_S))) * 86400 * NS_PER_S
    first = (start_ns // width) * width
    n = int((end_ns - first) // width) + 1
    return first + width * np.arange(n + 1, dtype=np.int64)


def _window(result: AnalysisResult, ts: np.ndarray) -> tuple[int, int]:
    start = result.first_ts_ns if result.first_ts_ns is not None else int(ts.min())
    end = result.last_ts_ns if result.last_ts_ns is not None else int(ts.max())
    if len(ts):
        start, end = min(start, int(ts.min())), max(end, int(ts.max()))
    return start, end


def _stacked_over_time(
    ax: Axes,
    edges: np.ndarray,
    idx: np.ndarray,
    categories: pd.Series,
    order: Sequence[str],
    colors: dict[str, str],
) -> list[Any]:
    nb = len(edges) - 1
    x = _num(edges)
    bottom = np.zeros(nb)
    handles = []
    values = categories.to_numpy(dtype=object)
    for name in order:
        counts = np.bincount(idx[values == name], minlength=nb)[:nb]
        if not counts.any():
            continue
        top = bottom + counts
        step = ax.stairs(  # one artist per category, however many bins
            top,
            x,
            baseline=bottom.copy(),
            fill=True,
            color=colors.get(name, OTHER_COLOR),
            linewidth=0,
            label=f"{label(name, 40)} ({int(counts.sum())})",
        )
        handles.append(step)
        bottom = top
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0, max(1.0, float(bottom.max()) * 1.12))
    return handles


def plot_failures_over_time(
    result: AnalysisResult, *, bin_seconds: float | None = None, max_bins: int = 60, ax: Axes | None = None
) -> Axes:
    """Failed handshakes per time bin stacked by cause (fixed colours), established ones in grey behind (right axis)."""
    ax = _axes(ax, (10, 4.2))
    hs = result.handshakes
    title = "TLS handshake failures over time, by cause"
    if hs.empty:
        return _empty(ax, title, "no TLS connections in this capture")
    ts = _ns(hs["ts"])
    start, end = _window(result, ts)
    edges = time_bins(start, end, max_bins, bin_seconds)
    width_s = (edges[1] - edges[0]) / NS_PER_S
    idx = ((ts - edges[0]) // (edges[1] - edges[0])).astype(np.int64)
    failed = (hs["outcome"] == "failed").to_numpy(dtype=bool, na_value=False)
    causes = hs["failure_cause"].fillna("other")
    order = list(Counter(causes[failed]).keys())
    order.sort(key=lambda c: (-int((causes[failed] == c).sum()), c))
    handles = _stacked_over_time(ax, edges, idx[failed], causes[failed], order, CAUSE_COLORS)
    ax.set_ylabel(f"failed handshakes per {human_duration(width_s)}")
    nb = len(edges) - 1
    behind: list[Any] = []
    twin_max = 0
    for outcome, color, lw in (("established", ESTABLISHED_COLOR, 0), ("incomplete", INCOMPLETE_COLOR, 1.2)):
        mask = (hs["outcome"] == outcome).to_numpy(dtype=bool, na_value=False)
        if not mask.any():
            continue
        counts = np.bincount(idx[mask], minlength=nb)[:nb]
        twin_max = max(twin_max, int(counts.max()))
        behind.append((outcome, counts, color, lw))
    if behind:
        tw = ax.twinx()
        for outcome, counts, color, lw in behind:
            fill = outcome == "established"
            artist = tw.stairs(
                counts,
                _num(edges),
                fill=fill,
                color=color,
                alpha=0.7 if fill else 1.0,
                linewidth=lw,
                label=f"{outcome} ({int(counts.sum())}, right axis)",
            )
            handles.append(artist)
        tw.set_ylim(0, twin_max * 1.12)
        tw.set_ylabel("established / incomplete per bin", color="#737373")
        tw.tick_params(axis="y", colors="#737373")
        ax.set_zorder(tw.get_zorder() + 1)
        ax.patch.set_visible(False)
    _time_axis(ax)
    n_failed = int(failed.sum())
    ax.set_title(f"{title}: {n_failed} of {len(hs)} failed")
    if not n_failed:
        ax.text(0.5, 0.5, "no failed handshakes", ha="center", va="center", transform=ax.transAxes, color="#636363")
    if handles:
        _legend(ax, handles, 1.08)
    return ax


def _event_style(event: str, direction: str) -> tuple[str, str]:
    if event in ("alert", "rst"):
        return "#d62728", "-"
    if event == "gap":
        return "#ff7f0e", ":"
    if event == "fin":
        return "#737373", "-"
    return ("#08519c", "-") if direction == "client" else ("#006d2c", "-")


def plot_ladder(result: AnalysisResult, conn_id: str, *, max_events: int = 40, ax: Axes | None = None) -> Axes:
    """Sequence diagram of one connection: client and server columns, every event with its time and Δt,
    alerts and resets in red, the outcome and cause in the title."""
    hs = result.handshakes
    rows = hs[hs["conn_id"] == conn_id]
    if rows.empty:
        raise KeyError(f"no connection {conn_id!r} in this result")
    row = rows.iloc[0]
    ev = result.events
    ev = ev[ev["conn_id"] == conn_id]
    shown = ev.iloc[:max_events]
    n = len(shown)
    ax = _axes(ax, (9, 1.6 + 0.34 * max(n, 3)))
    outcome = str(row["outcome"])
    cause = row["failure_cause"]
    title = f"{conn_id}: {outcome}"
    if outcome == "failed" and not pd.isna(cause):
        title += f": {label(cause)}"
        if not pd.isna(row["confidence"]):
            title += f" ({label(row['confidence'])})"
    head_client = f"client\n{label(row['client_ip'])}:{row['client_port']}"
    head_server = f"server\n{label(row['server_ip'])}:{row['server_port']}"
    if not pd.isna(row["sni"]):
        head_server += f"\nSNI {label(row['sni'], 36)}"
    band = cause_color(str(cause)) if outcome == "failed" else ESTABLISHED_COLOR
    ax.set_title(title, fontweight="bold", bbox={"facecolor": band, "alpha": 0.45, "edgecolor": "none"})
    xc, xs = 0.3, 0.8
    ax.set_xlim(0, 1)
    ax.set_ylim(n + 0.8, -1.4)
    ax.axis("off")
    ax.text(xc, -0.9, head_client, ha="center", va="center", fontsize="small", fontweight="bold")
    ax.text(xs, -0.9, head_server, ha="center", va="center", fontsize="small", fontweight="bold")
    ax.text(0.0, -0.9, "ms since\nfirst packet", ha="left", va="center", fontsize="x-small", color="#636363")
    for x in (xc, xs):
        ax.plot([x, x], [-0.3, n + 0.5], color="#969696", linewidth=1)
    if not n:
        ax.text(0.55, 0.5, "no events recorded for this connection", ha="center", color="#636363")
        return ax
    prev = None
    for i, (_, e) in enumerate(shown.iterrows(), start=1):
        y = i - 0.5
        direction = str(e["direction"])
        event = str(e["event"])
        color, style = _event_style(event, direction)
        x0, x1 = (xc, xs) if direction == "client" else (xs, xc)
        ax.annotate(
            "",
            xy=(x1, y + 0.25),
            xytext=(x0, y - 0.05),
            arrowprops={"arrowstyle": "-|>", "color": color, "linestyle": style, "linewidth": 1.4},
        )
        text = event if pd.isna(e["detail"]) else f"{event}: {label(e['detail'], 44)}"
        weight = "bold" if event in ("alert", "rst") else "normal"
        ax.text(
            (xc + xs) / 2, y - 0.12, text, ha="center", va="bottom", fontsize="x-small", color=color, fontweight=weight
        )
        if event in ("alert", "rst"):
            ax.plot([x1], [y + 0.25], marker="X", color="#d62728", markersize=9)
        dt = float("nan") if pd.isna(e["dt_ms"]) else float(e["dt_ms"])
        delta = "" if prev is None else f"Δ +{dt - prev:.3f}"
        ax.text(0.0, y, f"{dt:10.3f}", ha="left", va="center", fontsize="x-small", family="monospace")
        ax.text(0.12, y, delta, ha="left", va="center", fontsize="x-small", family="monospace", color="#636363")
        prev = dt
    if len(ev) > n:
        ax.text(0.55, n + 0.4, f"… {len(ev) - n} more events", ha="center", fontsize="small", color="#636363")
    return ax


def _server_cert_shas(result: AnalysisResult) -> set[str]:
    ch = result.chains
    leaves = ch[(ch["position"] == 0) & (ch["sent_by"] == "server")]
    shas = set(leaves["cert_sha256"].dropna())
    shas.update(result.handshakes["cert_sha256"].dropna())
    return shas


def plot_certificate_validity(
    result: AnalysisResult, *, max_certs: int = 30, leaves_only: bool = True, ax: Axes | None = None
) -> Axes:
    """Validity span of each distinct server certificate (leaves by default) against the capture window,
    coloured by its expiry status; expiries marked."""
    certs = result.certificates
    if leaves_only and not certs.empty:
        certs = certs[certs["cert_sha256"].isin(_server_cert_shas(result))]
    certs = certs.dropna(subset=["not_before", "not_after"])
    n_all = len(certs)
    ax = _axes(ax, (10, 1.4 + 0.32 * max(1, min(n_all, max_certs))))
    title = "Server certificate validity" if leaves_only else "Certificate validity"
    if certs.empty:
        return _empty(ax, title, "no certificates visible in this capture")
    status = certs["expiry"].fillna("")
    rank = status.map({"expired": 0, "expired during the capture": 0, "not yet valid": 1, "within 7 days": 2}).fillna(3)
    certs = certs.assign(_rank=rank, _status=status).sort_values(["_rank", "not_after"]).iloc[:max_certs]
    nb = _num(_ns(certs["not_before"]))
    na = _num(_ns(certs["not_after"]))
    y = np.arange(len(certs))
    colors = [EXPIRY_COLORS.get(s, OTHER_COLOR) for s in certs["_status"]]
    ax.barh(y, na - nb, left=nb, color=colors, height=0.6, edgecolor="#525252", linewidth=0.5)
    labels = []
    for _, c in certs.iterrows():
        name = c["subject"] if pd.isna(c["subject_cn"]) else c["subject_cn"]
        text = f"{label(name, 36)} [{str(c['cert_sha256'])[:8]}]"
        if c["_status"]:
            text += f"  {c['_status']}"
        labels.append(text)
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_ylim(max(len(certs), 4) - 0.5, -0.5)
    bad = certs["_status"].isin(["expired", "expired during the capture", "within 7 days", "within 30 days"])
    if bad.any():
        ax.plot(na[bad.to_numpy()], y[bad.to_numpy()], "x", color="#67000d", markersize=9, markeredgewidth=2)
    start, end = result.first_ts_ns, result.last_ts_ns
    handles: list[Any] = [
        Patch(color=EXPIRY_COLORS.get(k, OTHER_COLOR), label=k or "valid") for k in dict.fromkeys(certs["_status"])
    ]
    if start is not None and end is not None:
        s_num, e_num = float(_num(start)), float(_num(end))
        ax.axvspan(s_num, max(e_num, s_num + 1 / 24), color="#3182bd", alpha=0.25)
        ax.axvline(s_num, color="#3182bd", linewidth=1.5)
        handles.append(Line2D([], [], color="#3182bd", linewidth=1.5, label="capture"))
        lo, hi = min(float(nb.min()), s_num), max(float(na.max()), e_num)
    else:
        lo, hi = float(nb.min()), float(na.max())
    pad = max(1.0, (hi - lo) * 0.03)
    ax.set_xlim(lo - pad, hi + pad)
    _time_axis(ax)
    more = f" (first {max_certs} of {n_all}, problems first)" if n_all > max_certs else ""
    ax.set_title(f"{title}{more}")
    if handles:
        _legend(ax, handles)
    return ax


def server_label(ip: object, port: object, sni: object) -> str:
    """'10.0.0.1:443 (api.example)' for a server key (sni may be null)."""
    text = f"{ip}:{port}"
    if not _isna(sni):
        text += f" ({sni})"
    return text


def server_keys(hs: pd.DataFrame) -> pd.Series:
    """One label per row naming its server (address, port, SNI): the key reports and compare use."""
    if hs.empty:
        return pd.Series([], dtype="object", index=hs.index)
    text = hs["server_ip"].astype(str) + ":" + hs["server_port"].astype(str)
    sni = (" (" + hs["sni"].astype("string") + ")").fillna("")
    return (text + sni).astype(object)


def plot_handshake_latency(
    result: AnalysisResult,
    *,
    top: int = 6,
    include_failed: bool = False,
    bin_seconds: float | None = None,
    max_bins: int = 30,
    ax: Axes | None = None,
) -> Axes:
    """P50 / P90 / P99 of ``handshake_ms`` (ClientHello to end of handshake) per server over time,
    for the ``top`` servers with most handshakes; established handshakes only unless include_failed."""
    ax = _axes(ax, (10, 4.2))
    hs = result.handshakes
    hs = hs[hs["handshake_ms"].notna()]
    if not include_failed:
        hs = hs[hs["outcome"] == "established"]
    title = "Handshake latency (ClientHello to end of handshake) per server"
    if hs.empty:
        return _empty(ax, title, "no completed handshakes with a measured latency")
    ts = _ns(hs["ts"])
    start, end = _window(result, ts)
    edges = time_bins(start, end, max_bins, bin_seconds)
    width = int(edges[1] - edges[0])
    idx = (ts - edges[0]) // width
    keys = server_keys(hs)
    order = keys.value_counts().index[:top]
    ms = hs["handshake_ms"].to_numpy(dtype=float)
    centers = _num(edges[:-1] + width // 2)
    palette = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    handles: list[Any] = []
    all_vals: list[float] = []
    keyv = keys.to_numpy(dtype=object)
    for k, server in enumerate(order):
        color = palette[k % len(palette)]
        sel = keyv == server
        bins_present = np.unique(idx[sel])
        x = centers[bins_present]
        for pct, style, marker in PERCENTILES:
            vals = np.array([np.percentile(ms[sel & (idx == b)], pct) for b in bins_present])
            all_vals.extend(vals.tolist())
            ax.plot(x, vals, linestyle=style, marker=marker, color=color, markersize=4, linewidth=1.3)
        handles.append(Line2D([], [], color=color, linewidth=2, label=f"{label(server, 44)} ({int(sel.sum())})"))
    for pct, style, marker in PERCENTILES:
        handles.append(Line2D([], [], color="black", linestyle=cast(Any, style), marker=marker, label=f"P{pct}"))
    lo, hi = min(all_vals), max(all_vals)
    if lo > 0 and hi / lo > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, hi * 1.15 if hi > 0 else 1)
    ax.set_xlim(_num(edges[0]), _num(edges[-1]))
    ax.set_ylabel(f"handshake ms (per {human_duration(width / NS_PER_S)})")
    _time_axis(ax)
    more = f", top {top} of {keys.nunique()} servers" if keys.nunique() > top else ""
    ax.set_title(f"{title}{more}")
    _legend(ax, handles)
    ax.grid(True, axis="y", alpha=0.3)
    return ax


def _negotiated_over_time(
    result: AnalysisResult,
    column: str,
    title: str,
    top: int,
    fixed: dict[str, str] | None,
    bin_seconds: float | None,
    max_bins: int,
    ax: Axes | None,
) -> Axes:
    ax = _axes(ax, (10, 4.2))
    hs = result.handshakes
    sel = hs[hs[column].notna()]
    if sel.empty:
        return _empty(ax, title, f"no negotiated {column} visible in this capture")
    ts = _ns(sel["ts"])
    start, end = _window(result, ts)
    edges = time_bins(start, end, max_bins, bin_seconds)
    idx = ((ts - edges[0]) // (edges[1] - edges[0])).astype(np.int64)
    values = sel[column].astype(object)
    counts = values.value_counts()
    if fixed is not None:
        order = [v for v in fixed if v in counts.index] + [v for v in counts.index if v not in fixed]
        colors = dict(fixed)
    else:
        order = list(counts.index[:top])
        palette = [
            "#1f77b4",
            "#ff7f0e",
            "#2ca02c",
            "#d62728",
            "#9467bd",
            "#8c564b",
            "#e377c2",
            "#bcbd22",
            "#17becf",
            "#7f7f7f",
        ]
        colors = {v: palette[i % len(palette)] for i, v in enumerate(order)}
    if len(order) > top or (fixed is None and len(counts) > top):
        keep = set(order[:top])
        values = values.where(values.isin(keep), "other")
        order = [*order[:top], "other"]
        colors["other"] = OTHER_COLOR
    handles = _stacked_over_time(ax, edges, idx, values, order, colors)
    width_s = (edges[1] - edges[0]) / NS_PER_S
    ax.set_ylabel(f"handshakes per {human_duration(width_s)}")
    _time_axis(ax)
    ax.set_title(f"{title} ({len(sel)} of {len(hs)} connections negotiated one)")
    _legend(ax, handles)
    return ax


def plot_versions(
    result: AnalysisResult, *, bin_seconds: float | None = None, max_bins: int = 60, ax: Axes | None = None
) -> Axes:
    """Negotiated TLS versions per time bin (fixed colours: legacy versions in reds)."""
    return _negotiated_over_time(
        result, "version", "Negotiated TLS version over time", 8, VERSION_COLORS, bin_seconds, max_bins, ax
    )


def plot_ciphers(
    result: AnalysisResult,
    *,
    top: int = 8,
    bin_seconds: float | None = None,
    max_bins: int = 60,
    ax: Axes | None = None,
) -> Axes:
    """Negotiated cipher suites per time bin, the ``top`` most frequent, the rest as 'other'."""
    return _negotiated_over_time(
        result, "cipher", "Negotiated cipher suites over time", top, None, bin_seconds, max_bins, ax
    )


def client_subnet(ip: str, v4_prefix: int = 24, v6_prefix: int = 64) -> str:
    """The client's /24 (IPv4) or /64 (IPv6) network, as text."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = v4_prefix if addr.version == 4 else v6_prefix
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def _per_unique(values: pd.Series, fn: Callable[[Any], str]) -> pd.Series:
    """fn over the distinct values only (100,000 rows are mostly repeats)."""
    uniq = values.unique()
    mapping = dict(zip(uniq, (fn(v) for v in uniq), strict=True))
    return values.map(mapping).astype(object)


GROUPINGS = ("server", "sni", "client", "client_subnet", "client_stack")


def group_keys(hs: pd.DataFrame, by: str) -> pd.Series:
    """Per-row label for ``by`` in GROUPINGS (the client stack is JA4, with the stack's name when known)."""
    if by == "server":
        return server_keys(hs)
    if by == "sni":
        return hs["sni"].astype(object).fillna("(no SNI)")
    if by == "client":
        return hs["client_ip"].astype(object)
    if by == "client_subnet":
        return _per_unique(hs["client_ip"].astype(object), lambda ip: client_subnet(str(ip)))
    if by == "client_stack":
        ja4 = hs["ja4"].astype("string").fillna("(no ClientHello)")
        if "client_stack" not in hs.columns:
            return ja4.astype(object)
        named = hs["client_stack"].astype("string") + " (" + ja4 + ")"
        return named.fillna(ja4).astype(object)
    raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")


def plot_top_failing(result: AnalysisResult, *, by: str = "server", top: int = 15, ax: Axes | None = None) -> Axes:
    """The ``top`` servers / SNIs / clients / client subnets / client stacks (JA4) by failed handshakes,
    each bar stacked by cause and annotated with 'failed of total'."""
    hs = result.handshakes
    what = {
        "server": "servers",
        "sni": "SNIs",
        "client": "clients",
        "client_subnet": "client subnets",
        "client_stack": "client stacks (JA4)",
    }
    if by not in what:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    title = f"Top failing {what[by]}"
    failed_mask = (hs["outcome"] == "failed").to_numpy(dtype=bool, na_value=False) if not hs.empty else np.array([])
    n_rows = min(top, 15 if not failed_mask.any() else top)
    ax = _axes(ax, (10, 1.4 + 0.34 * max(2, min(n_rows, top))))
    if hs.empty:
        return _empty(ax, title, "no TLS connections in this capture")
    if not failed_mask.any():
        return _empty(ax, title, "no failed handshakes")
    keys = group_keys(hs, by)
    failed_keys = keys[failed_mask]
    totals = keys.value_counts()
    ranking = failed_keys.value_counts()
    order = list(ranking.index[:top])
    causes = hs["failure_cause"][failed_mask].fillna("other").astype(object)
    table = pd.crosstab(failed_keys, causes).reindex(order)
    cause_order = list(table.sum().sort_values(ascending=False).index)
    y = np.arange(len(order))
    left = np.zeros(len(order))
    handles = []
    for cause in cause_order:
        vals = table[cause].to_numpy(dtype=float)
        h = ax.barh(y, vals, left=left, color=cause_color(str(cause)), height=0.7, label=str(cause), linewidth=0)
        handles.append(h)
        left += vals
    for yi, key in zip(y, order, strict=True):
        n_f, n_t = int(ranking[key]), int(totals[key])
        ax.text(float(left[yi]), float(yi), f"  {n_f} of {n_t}", va="center", fontsize="x-small")
    ax.set_yticks(y, [label(k, 56) for k in order], fontsize="small")
    ax.set_ylim(max(len(order), 4) - 0.5, -0.5)  # top to bottom; a lone bar stays a bar
    ax.set_xlim(0, float(left.max()) * 1.18)
    ax.set_xlabel("failed handshakes")
    more = f" ({top} of {len(ranking)})" if len(ranking) > top else ""
    ax.set_title(f"{title}{more}")
    _legend(ax, handles)
    return ax


__all__ = [
    "CAUSE_COLORS",
    "cause_color",
    "plot_certificate_validity",
    "plot_ciphers",
    "plot_failures_over_time",
    "plot_handshake_latency",
    "plot_ladder",
    "plot_top_failing",
    "plot_versions",
]
