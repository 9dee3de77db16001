"""Compare the analyzer with Zeek's ssl.log for the conformance traces (shared by the test and by humans)."""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass

import analyzer

ZEEK = pathlib.Path(__file__).resolve().parents[2] / "shared" / "conformance" / "zeek"
TRACES = ZEEK / "traces"
FIELDS = ("version", "cipher", "sni", "alpn", "cert_sha256")


def zeek_version(v: str) -> str | None:
    if v in ("-", ""):
        return None
    table = {
        "SSLv2": "SSL 2.0",
        "SSLv3": "SSL 3.0",
        "TLSv10": "TLS 1.0",
        "TLSv11": "TLS 1.1",
        "TLSv12": "TLS 1.2",
        "TLSv13": "TLS 1.3",
    }
    if v in table:
        return table[v]
    if v.startswith("TLSv13-draft"):
        return f"TLS 1.3 draft {v[len('TLSv13-draft') :]}"
    if v.startswith("unknown-"):
        n = int(v.split("-")[1])
        return f"TLS 1.3 experiment 0x{n:04x}" if n >> 8 == 0x7E else f"unknown 0x{n:04x}"
    return v


def _unset(v: str) -> str | None:
    return None if v in ("-", "", "(empty)") else v


@dataclass(frozen=True)
class Expectation:
    trace: str
    tuple4: tuple[str, int, str, int]
    values: dict[str, str | None]


def oracle(include: callable = lambda t: True) -> list[Expectation]:  # type: ignore[valid-type]
    seen: dict[tuple[str, tuple[str, int, str, int]], Expectation] = {}
    with open(ZEEK / "zeek_ssl_oracle.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            trace = row["trace"]
            if not include(trace) or not row["id.orig_p"]:
                continue
            key = (row["id.orig_h"], int(row["id.orig_p"]), row["id.resp_h"], int(row["id.resp_p"]))
            fps = _unset(row["cert_chain_fps"])
            values = {
                "version": zeek_version(row["version"]),
                "cipher": _unset(row["cipher"]),
                "sni": _unset(row["server_name"]),
                "alpn": _unset(row["next_protocol"]),
                "cert_sha256": fps.split(",")[0] if fps else None,
                "established": row["established"] or None,
            }
            # several Zeek tests read the same trace: keep the most informative row
            old = seen.get((trace, key))
            if old is None or sum(v is not None for v in values.values()) > sum(
                v is not None for v in old.values.values()
            ):
                seen[(trace, key)] = Expectation(trace, key, values)
    return list(seen.values())


def compare(expectations: list[Expectation]) -> tuple[int, int, list[str]]:
    """(fields agreeing, fields compared, disagreements as 'trace tuple field: zeek=.. ours=..')."""
    results: dict[str, analyzer.AnalysisResult] = {}
    agree = total = 0
    problems: list[str] = []
    for exp in expectations:
        if exp.trace not in results:
            results[exp.trace] = analyzer.analyze(TRACES / exp.trace)
        hs = results[exp.trace].handshakes
        c_ip, c_port, s_ip, s_port = exp.tuple4
        rows = hs[
            (hs.client_ip == c_ip) & (hs.client_port == c_port) & (hs.server_ip == s_ip) & (hs.server_port == s_port)
        ]
        ours = None if rows.empty else str(rows.iloc[0]["outcome"])
        z_est, z_ver = exp.values.get("established"), exp.values.get("version") or ""
        if z_est in ("T", "F"):
            # Zeek's TLS 1.3 "established" only means both sides sent encrypted records (README):
            # there, only our "established" must imply Zeek's T. Before 1.3 the definitions agree.
            total += 1
            tls13 = z_ver.startswith("TLS 1.3")
            same = (ours == "established") <= (z_est == "T") if tls13 else (ours == "established") == (z_est == "T")
            if same:
                agree += 1
            else:
                problems.append(f"{exp.trace} {c_ip}:{c_port}->{s_ip}:{s_port} established: zeek={z_est} ours={ours}")
        for f in FIELDS:
            want = exp.values[f]
            if want is None:
                continue  # Zeek has no value: nothing to agree with
            total += 1
            got = (
                None
                if rows.empty or rows.iloc[0][f] is None or str(rows.iloc[0][f]) == "<NA>"
                else str(rows.iloc[0][f])
            )
            if got == want:
                agree += 1
            else:
                problems.append(f"{exp.trace} {c_ip}:{c_port}->{s_ip}:{s_port} {f}: zeek={want} ours={got}")
    return agree, total, problems


if __name__ == "__main__":
    import sys

    sel = sys.argv[1] if len(sys.argv) > 1 else "tls/"
    exps = oracle(lambda t: t.startswith(sel) and "starttls" not in t and "dtls" not in t)
    a, t, probs = compare(exps)
    print("\n".join(probs))
    print(f"{a}/{t} = {a / max(t, 1):.2%} over {len(exps)} connections")
