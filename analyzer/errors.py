"""The exceptions tls-analyzer raises or uses internally.

Public:
    CaptureError(ValueError)  the input is not a capture file at all (the message names the
                              file and what was found instead). Raised by ``analyze``; the CLI
                              turns it into a one-line message and exit status 2.
Internal (never escape ``analyze``):
    ParseError(Exception)     a protocol parser met bytes it cannot read; the caller records a
                              warning against the frame or connection and carries on.
    NeedMoreData(ParseError)  a sans-IO parser was given an incomplete message.
Any other exception from a parser is a bug, not a property of the input (h11's rule).
"""

from __future__ import annotations


class CaptureError(ValueError):
    """The file is not a packet capture (pcap, pcapng, optionally gzip/zstd-compressed)."""


class ParseError(Exception):
    """Bytes from the wire that a parser cannot make sense of."""


class NeedMoreData(ParseError):
    """The buffer ends before the structure being parsed does."""
