"""Trace hooks: what a pool did, when, and how long it took.

Pass ``trace=callback`` to a pool (or to a PoolManager, which hands it to
every pool). The callback is called synchronously with a :class:`TraceEvent`
after each step; it must be quick and must not raise (an exception from it
propagates into the request). With no callback the pool does no tracing work.

Events, in the order a request meets them:

``checkout``
    waited for a limiter token; ``detail["tokened"]`` is False for a
    ``block=False`` overflow connection.
``connect``
    opened a connection (TCP, proxy tunnel and TLS handshake included);
    ``detail["tls"]`` holds the TLS version for https.
``reuse``
    took an idle connection instead (duration: the hand-off from its task).
``request``
    sent the request head and body.
``response``
    received the response head; ``detail["status"]``.
``release``
    gave the connection back; ``detail["reuse"]`` says whether it was kept.
``close``
    a connection closed; ``detail["reason"]`` (e.g. "closed by the server",
    "keep-alive expired", "discarded").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TraceCallback", "TraceEvent"]


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One step of a pool's work.

    Attributes:
        name: the step (see the module docs).
        origin: the pool's origin, ``scheme://host:port``.
        started: ``trio.current_time()`` when the step began.
        duration: seconds the step took (0 for instantaneous steps).
        detail: step-specific facts.
    """

    name: str
    origin: str
    started: float
    duration: float
    detail: Mapping[str, Any] = field(default_factory=dict)


TraceCallback = Callable[[TraceEvent], None]
