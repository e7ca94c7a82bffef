"""Pure: how one fill ended, as values the fill's callers match on (made here, found from another replica, or
Braze's answer passed on and never stored)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from proxy.core.entry import Entry

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Made(Generic[T]):
    """This replica called Braze and stored the result."""

    value: T


@dataclass(frozen=True, slots=True)
class Found(Generic[T]):
    """Another replica's fill (or one that ended just before this replica took the lock)."""

    value: T


@dataclass(frozen=True, slots=True)
class PassedOn:
    """Braze's answer, passed on as it is and never stored (by this replica, or relayed from another)."""

    entry: Entry
    by_peer: bool = False


Filled = Made[T] | Found[T] | PassedOn
