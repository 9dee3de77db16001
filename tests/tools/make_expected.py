"""Draft tests/expected/samples.csv from samples/manifest.json (what each peer did and the intended
outcome) beside what the analyzer says now. A person reviews every row before committing it:
rows where the two differ get a `pending` note naming what is missing, never a silent copy."""

from __future__ import annotations

import csv
import json
import pathlib
import sys

import analyzer

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKI_ROOT = ROOT / "samples" / "gen" / "pki" / "root.pem"  # the samples' private root: their clients trusted it
FIELDS = [
    "file",
    "client_port",
    "server_port",
    "outcome",
    "failure_cause",
    "alert",
    "alert_sender",
    "version",
    "sni",
    "client",
    "pending",
]


def pending_reason(conn: dict[str, object], cause: str | None, has_row: bool, version: str) -> str:
    """Why the packets alone cannot decide this row; a person reviews every one."""
    if not has_row and cause == "starttls_refused":
        return (
            "no row, limitation: a client that leaves a TLS-less greeting without a word looks exactly "
            "like a TCP health check (README)"
        )
    if cause and cause.startswith("cert_") and version == "TLS 1.3":
        return (
            "needs the key log: TLS 1.3 hides the certificate and the client closes without an alert "
            "(tests/test_keylog_diagnosis.py checks it with keys)"
        )
    return "REVIEW"


def main() -> None:
    manifest = json.loads((ROOT / "samples" / "manifest.json").read_text())
    rows = []
    for sample in manifest:
        hs = analyzer.analyze(ROOT / "samples" / sample["file"], ca_bundle=[PKI_ROOT]).handshakes
        for conn in sample["connections"]:
            got = hs[(hs.client_port == conn["client_port"]) & (hs.server_port == conn["server_port"])]
            cur = got.iloc[0] if len(got) else None
            want_outcome, want_cause = conn["intended_outcome"], conn["intended_cause"]
            same = (
                cur is not None
                and cur.outcome == want_outcome
                and (cur.failure_cause if isinstance(cur.failure_cause, str) else None) == want_cause
            )

            def val(name: str, cur: object = cur) -> str:
                v = None if cur is None else cur[name]  # type: ignore[index]
                return v if isinstance(v, str) else ""

            alert, sender = val("alert"), val("alert_sender")
            rows.append(
                {
                    "file": sample["file"],
                    "client_port": conn["client_port"],
                    "server_port": conn["server_port"],
                    "outcome": want_outcome,
                    "failure_cause": want_cause or "",
                    "alert": alert,
                    "alert_sender": sender,
                    "version": val("version"),
                    "sni": val("sni"),
                    "client": conn["client"],
                    "pending": "" if same else pending_reason(conn, want_cause, cur is not None, val("version")),
                }
            )
    out = ROOT / "tests" / "expected" / "samples.csv"
    # captures made by hand outside make_samples.py (no manifest entry) keep their reviewed rows
    listed = {str(sample["file"]) for sample in manifest}
    with open(out, newline="") as fh:
        rows += [r for r in csv.DictReader(fh) if r["file"] not in listed]
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}: {len(rows)} rows, {sum(1 for r in rows if r['pending'])} pending", file=sys.stderr)


if __name__ == "__main__":
    main()
