"""tls-analyzer: which TLS handshakes in a packet capture failed, exactly why, and since when."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer import native as native  # first: decides between compiled modules and their source
from analyzer.api import analyze
from analyzer.compare import compare  # binds analyzer.compare to the function, not the module of that name
from analyzer.errors import CaptureError
from analyzer.result import AnalysisResult

if TYPE_CHECKING:
    from analyzer.plot import (
        plot_certificate_validity as plot_certificate_validity,
    )
    from analyzer.plot import (
        plot_ciphers as plot_ciphers,
    )
    from analyzer.plot import (
        plot_failures_over_time as plot_failures_over_time,
    )
    from analyzer.plot import (
        plot_handshake_latency as plot_handshake_latency,
    )
    from analyzer.plot import (
        plot_ladder as plot_ladder,
    )
    from analyzer.plot import (
        plot_top_failing as plot_top_failing,
    )
    from analyzer.plot import (
        plot_versions as plot_versions,
    )

_PLOTS = (
    "plot_certificate_validity",
    "plot_ciphers",
    "plot_failures_over_time",
    "plot_handshake_latency",
    "plot_ladder",
    "plot_top_failing",
    "plot_versions",
)


def __getattr__(name: str) -> Any:
    """plot_* load matplotlib only when first used (the command line's analyze never needs it)."""
    if name in _PLOTS:
        from analyzer import plot

        return getattr(plot, name)
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")


__all__ = ["AnalysisResult", "CaptureError", "analyze", "compare", *_PLOTS]
__version__ = "0.1.0"
