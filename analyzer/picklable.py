"""Frozen: the base of frozen dataclasses that travel between processes (--jobs, Dask) in Flow state.

mypyc-compiled frozen dataclasses cannot be unpickled the default way (it assigns fields one by one
after creation), so they are rebuilt by calling the class with their field values, which works
compiled or not.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}  # field names per class (dataclasses.fields() per object is slow)


class Frozen:
    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        cls = type(self)
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(f.name for f in fields(self))  # type: ignore[arg-type]
        return (cls, tuple([getattr(self, n) for n in names]))
