"""Shared paths and helpers for the tests."""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
ZEEK_TRACES = SHARED / "conformance" / "zeek" / "traces"
sys.path.insert(0, str(ROOT / "tests"))
