"""Certificates seen in handshakes: facts (certs), trust anchors (trust), chain verdicts (validate), stapled OCSP (ocsp)."""

from __future__ import annotations

from analyzer.x509.certs import CertInfo, describe
from analyzer.x509.ocsp import OcspVerdict, check_stapled
from analyzer.x509.trust import CertPool, TrustStore, load_intermediates, load_trust
from analyzer.x509.validate import CAUSE_BY_STATUS, ChainVerdict, Defect, validate_chain

__all__ = [
    "CAUSE_BY_STATUS",
    "CertInfo",
    "CertPool",
    "ChainVerdict",
    "Defect",
    "OcspVerdict",
    "TrustStore",
    "check_stapled",
    "describe",
    "load_intermediates",
    "load_trust",
    "validate_chain",
]
