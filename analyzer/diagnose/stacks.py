"""Client stack identification from the JA4 fingerprint (tables in stacks_data.py, learned from samples/)."""

from __future__ import annotations

from analyzer.diagnose.stacks_data import STACKS

_BY_CIPHERS: dict[str, set[str]] = {}
for _key, _name in STACKS.items():
    _BY_CIPHERS.setdefault(_key.split("_")[0], set()).update(_name.split(" / "))


def client_stack(ja4: str | None) -> str | None:
    """'curl 7.88' for a known fingerprint; 'OpenSSL 3.0-like' when only the cipher list is known; else None."""
    if not ja4 or ja4.count("_") != 2:
        return None
    _a, b, c = ja4.split("_")
    exact = STACKS.get(f"{b}_{c}")
    if exact is not None:
        return exact
    family = _BY_CIPHERS.get(b)
    if family:
        return " / ".join(sorted(family)) + "-like"
    return None
