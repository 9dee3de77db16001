"""Which modules `pip install` compiles with mypyc, and the switch back to their Python source.

The per-connection tier (record layer, handshake parsers, observer, TCP reassembly, flow table) and
the per-row stages (evidence, diagnosis rules, certificate judging, rows) are ordinary typed Python.
setup.py compiles exactly these modules with mypyc (the mypy project's compiler, as used by black
and mypy itself) into C extensions that sit beside the sources; the same source runs either way,
only faster compiled (see the README's Speed section for what it buys, measured).

The Python source is used instead when
- there was no C compiler at install time (setup.py then skips the extensions), or
- ``TLS_ANALYZER_PURE=1`` is set (how tests prove both paths give the same rows), or
- in a source checkout, a compiled module is older than its ``.py`` (an edit since the last
  ``pip install -e .``): a stale build must never hide an edit, so all of them fall back together
  (compiled modules call each other directly, so a partial fallback would still run old code).

Writing compiled modules: mypyc divides an int by an int in floating point where Python rounds the
exact quotient, so such divisions convert to float explicitly (``float(ns) / NS_PER_DAY``); classes
whose objects are pickled (Flow state sent back by --jobs workers) can be created without arguments,
and frozen dataclasses among them derive from analyzer.picklable.Frozen. Compiled functions check
their argument types when called, so a public function that accepts anything says ``object``
(analyzer.api, the entry point, stays Python and keeps Python's duck typing). tests/test_native.py runs
every sample both ways and compares every table.

This module is imported by setup.py by path, so it uses the standard library only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

COMPILED: tuple[str, ...] = (
    "analyzer.picklable",
    "analyzer.tls.buffer",
    "analyzer.tls.records",
    "analyzer.tls.messages",
    "analyzer.tls.observer",
    "analyzer.tls.fingerprints",
    "analyzer.tcp.reassembly",
    "analyzer.tcp.flow",
    "analyzer.engine",
    "analyzer.diagnose.evidence",
    "analyzer.diagnose.rules",
    "analyzer.x509.judge",
    "analyzer.certificates",
    "analyzer.tables",
    "analyzer.scan",
    "analyzer.x509.der",
    "analyzer.x509.certs",
    "analyzer.x509.trust",
    "analyzer.x509.validate",
    "analyzer.x509.ocsp",
    "analyzer.diagnose.alert_semantics",
    "analyzer.diagnose.stacks",
    "analyzer.tls.registry",
    "analyzer.report.remediation",
)
GROUP = "analyzer.native"  # the shared library mypyc builds is analyzer/native__mypyc.*.so
OTHER_C = ("analyzer.capture._walk",)  # the hand-written pcap walk (it has its own Python fallback)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def source_path(module: str) -> str:
    return os.path.join(os.path.dirname(PACKAGE_DIR), *module.split(".")) + ".py"


def _extension_path(module: str) -> str | None:
    base = source_path(module)[: -len(".py")]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            return base + suffix
    return None


def stale_modules() -> list[str]:
    """Compiled modules older than their source, in a source checkout (empty for an installed wheel)."""
    if not os.path.exists(os.path.join(os.path.dirname(PACKAGE_DIR), "setup.py")):
        return []
    out = []
    for mod in COMPILED:
        ext = _extension_path(mod)
        if ext is not None and os.path.getmtime(ext) < os.path.getmtime(source_path(mod)):
            out.append(mod)
    return out


class _SourceFirst:
    """A meta-path finder that loads the compiled modules from their .py and hides the C helpers."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in OTHER_C:
            raise ModuleNotFoundError(f"{fullname}: compiled helpers are off (TLS_ANALYZER_PURE)", name=fullname)
        if fullname in COMPILED:
            return importlib.util.spec_from_file_location(fullname, source_path(fullname))
        return None


def _install() -> str | None:
    """Called once from analyzer/__init__.py, before any compiled module is imported."""
    if os.environ.get("TLS_ANALYZER_PURE", "") not in ("", "0"):
        reason = "TLS_ANALYZER_PURE is set"
    else:
        stale = stale_modules()
        if not stale:
            return None
        reason = f"{stale[0]} was edited after it was compiled"
        warnings.warn(
            f"tls-analyzer: {reason}; running the Python source of every compiled module "
            "(run `pip install -e .` again to rebuild)",
            RuntimeWarning,
            stacklevel=3,
        )
    if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())
    return reason


PURE_REASON = _install() if __name__ == "analyzer.native" else None  # not when setup.py reads the list


def compiled() -> bool:
    """True when the per-connection tier runs as mypyc-compiled C (the fast path)."""
    mod = sys.modules.get("analyzer.tls.observer")
    if mod is None:
        import analyzer.tls.observer as mod
    return (getattr(mod, "__file__", "") or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


__all__ = ["COMPILED", "GROUP", "PURE_REASON", "compiled", "source_path", "stale_modules"]
