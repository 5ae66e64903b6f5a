"""Timeout: a frozen value (pure: the I/O code turns it into cancel scopes).

``connect`` bounds TCP connect + TLS handshake (+ proxy tunnel); ``read`` bounds
every single wait for the server (bytes arriving, or the socket accepting bytes);
``total`` bounds one attempt from connect to the end of the body that
``request()`` preloads. The pool puts a cancel scope around the connect and
the whole attempt; the protocol engine gets the read limit with each
exchange and puts one around each wait. They are scopes, not socket
timeouts, so the caller's own scopes compose with ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Final, Union

__all__ = ["DEFAULT_TIMEOUT", "Timeout"]


class _Default(Enum):
    """Sentinel type: "use the default" (which is: no limit), as urllib3."""

    token = 0

    def __repr__(self) -> str:
        return "Timeout.DEFAULT_TIMEOUT"


_DEFAULT: Final = _Default.token

#: What a caller may pass as ``timeout=``.
TimeoutLike = Union["Timeout", float, int, None, _Default]


def _validate(name: str, value: float | _Default | None) -> float | _Default | None:
    if value is None or value is _DEFAULT:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Timeout {name} must be a number of seconds, None or DEFAULT; "
            f"got {value!r}"
        )
    if math.isnan(value) or value <= 0:
        raise ValueError(f"Timeout {name} must be > 0 seconds; got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Timeout:
    """Connect, read and total time limits for a request.

    Args:
        total: the most one attempt may take, from connect to the end of the
            preloaded body. ``None``: no overall limit.
        connect: the most opening a connection may take (TCP, TLS, tunnel).
        read: the longest the server may stay silent (or not accept bytes).

    ``Timeout.DEFAULT_TIMEOUT`` (or leaving a part unset) means "no limit",
    like urllib3 with the socket module's default. Values are immutable: there
    is nothing to clone per request.
    """

    total: float | None = None
    connect: float | _Default | None = _DEFAULT
    read: float | _Default | None = _DEFAULT

    DEFAULT_TIMEOUT = _DEFAULT

    def __post_init__(self) -> None:
        for name in ("total", "connect", "read"):
            object.__setattr__(self, name, _validate(name, getattr(self, name)))

    @classmethod
    def from_float(cls, timeout: float | _Default | None) -> Timeout:
        """A Timeout whose connect and read limits are both ``timeout``."""
        return cls(connect=timeout, read=timeout)

    @classmethod
    def resolve(cls, value: TimeoutLike, default: Timeout) -> Timeout:
        """Turn whatever a caller passed as ``timeout=`` into a Timeout."""
        if value is _DEFAULT:
            return default
        if isinstance(value, Timeout):
            return value
        return cls.from_float(value)

    @property
    def connect_timeout(self) -> float | None:
        """Seconds allowed to open a connection, or None for no limit."""
        return self._limit(self.connect)

    @property
    def read_timeout(self) -> float | None:
        """Seconds the server may stay silent, or None for no limit."""
        return self._limit(self.read)

    def _limit(self, part: float | _Default | None) -> float | None:
        part = None if part is _DEFAULT else part
        if self.total is None:
            return part
        if part is None:
            return self.total
        return min(part, self.total)


#: The pools' default: no limits, as urllib3.
DEFAULT_TIMEOUT: Final = Timeout()
