"""tls-analyzer: which TLS handshakes in a packet capture failed, exactly why, and since when."""

from __future__ import annotations

from analyzer.api import analyze
from analyzer.errors import CaptureError
from analyzer.result import AnalysisResult

__all__ = ["AnalysisResult", "CaptureError", "analyze"]
__version__ = "0.1.0"
