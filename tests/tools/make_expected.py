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


def pending_reason(conn: dict[str, object], cause: str | None, sni: str) -> str:
    if cause == "cert_hostname_mismatch" and not sni:
        return (
            "limitation: a client that connects by address, finishes the handshake and closes silently "
            "looks exactly like a health-check probe (README)"
        )
    if cause == "starttls_refused":
        return "STARTTLS is not followed yet (issue 8)"
    if cause and cause.startswith("cert_"):
        return "needs chain validation at capture time (issue 3)"
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
                    "pending": "" if same else pending_reason(conn, want_cause, val("sni")),
                }
            )
    out = ROOT / "tests" / "expected" / "samples.csv"
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}: {len(rows)} rows, {sum(1 for r in rows if r['pending'])} pending", file=sys.stderr)


if __name__ == "__main__":
    main()
