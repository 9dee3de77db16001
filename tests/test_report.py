"""The incident report: sections and numbers, self-contained scriptless HTML, wire text escaped; exports, remedies."""

from __future__ import annotations

import csv
import json
import pathlib
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import pytest
from conftest import SAMPLES, SHARED

import analyzer
from analyzer import cli
from analyzer.diagnose.causes import Cause
from analyzer.report import content, export, remediation, write_report
from analyzer.report.document import Document, Para, Pre, Section, Table
from analyzer.report.html_out import render_html
from analyzer.report.markdown_out import md, render_markdown

ROOT_CA = str(SAMPLES / "gen" / "pki" / "root.pem")
SECTIONS = ["headline", "causes", "affected", "certificates", "negotiation", "remediation", "appendix"]
FORMULA = ("=", "+", "-", "@", "\t", "\r")

# every tag and attribute the renderer writes; anything else in the page came from somewhere it should not
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "h5", "h6", "p", "nav", "ul", "li",
    "a", "section", "table", "thead", "tbody", "tr", "th", "td", "pre", "code", "strong", "figure", "img",
    "figcaption",
}  # fmt: skip
ALLOWED_ATTRS = {"lang", "charset", "http-equiv", "content", "name", "href", "id", "class", "alt", "src"}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_markup(page: str, allowed: set[str] = ALLOWED_TAGS) -> Tags:
    """No tag or attribute outside the renderer's own, links only inside the page, images only data: PNGs."""
    parser = Tags()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert tag in allowed, tag
        for name, value in attrs:
            assert name in ALLOWED_ATTRS, (tag, name, value)
            if name == "href":
                assert value is not None and value.startswith("#"), value
            if name == "src":
                assert value is not None and value.startswith("data:image/png;base64,"), value[:40] if value else value
    return parser


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[analyzer.AnalysisResult, pathlib.Path]:
    """The bar: `tls-analyzer report samples/incident-mixed.pcapng --ca-bundle root.pem --output DIR`."""
    out = tmp_path_factory.mktemp("report") / "out"
    code = cli.main(["report", str(SAMPLES / "incident-mixed.pcapng"), "--ca-bundle", ROOT_CA, "--output", str(out)])
    assert code == 0
    return analyzer.analyze(SAMPLES / "incident-mixed.pcapng", ca_bundle=[ROOT_CA]), out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[analyzer.AnalysisResult, pathlib.Path]:
    out = tmp_path_factory.mktemp("hostile")
    r = analyzer.analyze(SAMPLES / "hostile-strings.pcap")
    write_report(r, out)
    return r, out


def test_report_files(incident: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    _r, out = incident
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "report.md", "connections.csv", "connections.jsonl", "failures-over-time.png"} <= names
    page = (out / "report.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert page.count("<img ") == len(pngs)  # every figure embedded, none missing
    markdown = (out / "report.md").read_text()
    for name in pngs:
        assert f"]({name})" in markdown  # and referenced beside the Markdown
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(b"\x89PNG")


def test_html_is_self_contained_and_scriptless(incident: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    page = (incident[1] / "report.html").read_text()
    check_markup(page)
    assert "<script" not in page.lower() and "javascript:" not in page.lower()
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # Content-Security-Policy as a second line of defence


def test_sections_and_numbers(incident: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    r, out = incident
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    for anchor in SECTIONS:
        assert f'id="{anchor}"' in page and f'<a id="{anchor}"></a>' in markdown
    hs = r.handshakes
    outcomes = Counter(hs["outcome"])
    n, failed = len(hs), outcomes["failed"]
    headline = f"{failed} of {n} TLS connections failed"
    assert headline in page and headline in markdown
    assert f"{outcomes['established']} established" in page
    assert "Generated from capture 2026-11-27 14:18:49 UTC to 2026-11-27 14:20:45 UTC" in page
    # causes ranked: one row per cause with its count, one subsection (ladder + explain) per cause
    text = " ".join(check_markup(page).text)
    for cause, k in Counter(hs["failure_cause"].dropna()).items():
        assert re.search(rf"\b{cause}: {k} connection\(s\)", text), cause
        assert f'id="cause-{content.slug(cause)}"' in page
        assert (out / f"ladder-{content.slug(cause)}.png").exists()
        assert remediation.remedy(cause).action in text
    # the appendix lists every connection, the CSV every row
    for cid in hs["conn_id"]:
        assert cid in page
    with open(out / "connections.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n and [row["conn_id"] for row in rows] == list(hs["conn_id"])
    lines = (out / "connections.jsonl").read_text().splitlines()
    assert len(lines) == n and json.loads(lines[0])["conn_id"] == hs["conn_id"].iloc[0]


def test_certificate_findings(incident: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    r, out = incident
    page = (out / "report.html").read_text()
    expired = r.certificates[r.certificates["expiry"] == "expired"]
    assert not expired.empty
    for sha in expired["cert_sha256"]:
        assert sha[:16] in page
    assert "chain_incomplete" in page  # the chain defect of the missing-intermediate server
    assert "No server presented different leaf certificates" in page


def test_hostile_strings_are_escaped_in_html(hostile: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    r, out = hostile
    assert (r.handshakes["sni"] == "<b>x</b>.test").any()
    assert (r.certificates["subject_cn"] == "<script>alert(1)</script>").any()
    page = (out / "report.html").read_text()
    parsed = check_markup(page)  # no <script>, <b>, <img onerror> or <i> from the wire
    assert "<script" not in page.lower() and "onerror=" not in page.replace("onerror=alert", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;.test" in page
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text and "<b>x</b>.test" in text  # shown literally


def test_hostile_strings_are_escaped_in_markdown(hostile: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    _r, out = hostile
    markdown = (out / "report.md").read_text()
    fenced = re.sub(r"(?ms)^(`{3,})text\n.*?^\1$", "", markdown)  # explain() blocks are code: shown verbatim
    assert "<" not in re.sub(r'<a id="[a-z0-9-]+"></a>', "", fenced)  # only the renderer's anchors are markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in fenced
    # table rows keep their column count whatever the cells hold (| escaped, newlines shown as ↵)
    for block in re.findall(r"(?m)(?:^\|.*\|\n)+", fenced):
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(counts) == 1, block[:300]
    assert md("a|b\nc") == "a\\|b ↵ c"


def test_hostile_strings_are_neutralised_in_csv(hostile: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    _r, out = hostile
    with open(out / "connections.csv", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not [c for c in cells if c.startswith(FORMULA)]
    assert '\'=HYPERLINK("http://evil.test","x")' in cells
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in cells


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no chromium")
def test_no_script_runs_in_a_browser(hostile: tuple[analyzer.AnalysisResult, pathlib.Path]) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    page = hostile[1] / "report.html"
    dom = subprocess.run(
        [str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "</html>" in dom
    check_markup(dom)  # what the browser built holds only the renderer's own elements: nothing ran or injected
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_empty_capture_report(tmp_path: pathlib.Path) -> None:
    from test_plot import empty_capture

    r = analyzer.analyze(empty_capture(tmp_path / "arp.pcap"))
    files = write_report(r, tmp_path / "out")
    page = pathlib.Path(files.html).read_text()
    check_markup(page)
    assert "No TLS connection attempts were found" in page
    assert pathlib.Path(files.markdown).read_text().startswith("# TLS incident report")


def test_renderers_escape_every_block() -> None:
    evil = "<img src=x onerror=alert(1)>|`x`\n# h"
    doc = Document(evil, evil, [Section(evil, "s", [Para([evil]), Table([evil], [[evil]]), Pre(evil)])])
    page = render_html(doc)
    check_markup(page)
    assert "<img src=x" not in page
    markdown = render_markdown(doc)
    assert "<img" not in markdown.split("```text")[0]


def test_remediation_covers_every_cause() -> None:
    codes = {c.value for c in Cause}
    spec = SHARED / "spec" / "failure-causes.md"
    if spec.exists():
        text = spec.read_text()
        table = text[text.index("## Before TLS") :]
        codes |= set(re.findall(r"(?m)^\| `([a-z_]+)` \|", table))
    assert codes <= set(remediation.REMEDIATION)
    for code in codes:
        rem = remediation.REMEDIATION[code]
        assert rem.meaning and rem.action and rem.side


def test_exports(tmp_path: pathlib.Path) -> None:
    r = analyzer.analyze(SAMPLES / "hostile-strings.pcap")
    export.to_jsonl(r, tmp_path / "h.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [row["sni"] for row in rows] == list(r.handshakes["sni"].astype(object).where(r.handshakes["sni"].notna()))
    assert rows[0]["ts"].endswith("Z")
    pytest.importorskip("pyarrow")
    import pandas as pd

    export.to_parquet(r, tmp_path / "h.parquet")
    back = pd.read_parquet(tmp_path / "h.parquet")
    assert list(back["conn_id"]) == list(r.handshakes["conn_id"])
    export.to_csv(r, tmp_path / "certs.csv", table="certificates")
    with open(tmp_path / "certs.csv", newline="") as fh:
        certs = list(csv.DictReader(fh))
    assert certs[0]["subject_cn"] == "<script>alert(1)</script>"
    with open(tmp_path / "certs.csv", newline="") as fh:
        assert not [c for row in csv.reader(fh) for c in row if c.startswith(FORMULA)]


def test_result_repr_html_is_escaped() -> None:
    r = analyzer.analyze(SAMPLES / "hostile-strings.pcap")
    out = r._repr_html_()
    parsed = check_markup(out, {"div", "p", "b", "table", "tr", "th", "td"})
    assert [t for t, _a in parsed.tags].count("b") == 1  # the renderer's own, not the SNI's
    # the failing servers it lists carry the hostile SNIs, escaped
    assert "=HYPERLINK(&quot;http://evil.test&quot;" in out and "<b>x</b>" not in out
    assert "6 TLS connection(s)" in out


def test_cli_report_errors(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "missing.pcap"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    readme = SAMPLES / "README.md"
    assert cli.main(["report", str(readme), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
