"""client_stack names the real client of every sample connection whose ClientHello was seen."""

from __future__ import annotations

import json

from conftest import SAMPLES

import analyzer
from analyzer.diagnose.stacks import client_stack


def test_stacks_of_the_samples() -> None:
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    checked = 0
    for sample in manifest:
        hs = analyzer.analyze(SAMPLES / sample["file"]).handshakes
        for conn in sample["connections"]:
            if "relaying" in conn["client"] or "proxy" in conn["client"].lower().split()[0]:
                continue  # a proxy's leg carries the real client's ClientHello
            row = hs[(hs.client_port == conn["client_port"]) & (hs.server_port == conn["server_port"])]
            if row.empty or not isinstance(row.iloc[0].ja4, str):
                continue
            family = conn["client"].split()[0].replace("Node.js", "node")
            assert family in str(row.iloc[0].client_stack), (sample["file"], conn["client"], row.iloc[0].client_stack)
            checked += 1
    assert checked >= 150


def test_unknown_and_family_fingerprints() -> None:
    assert client_stack(None) is None
    assert client_stack("t13d0000h2_000000000000_000000000000") is None
    known = "t13d1516h2_16476d049b0b_78f1d400d464"
    assert client_stack(known) == "OpenSSL 3.0"
    assert client_stack("t13d1516h2_16476d049b0b_ffffffffffff").endswith("-like")
