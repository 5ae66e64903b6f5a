"""Trace hooks: what a pool did, when, and how long it took.

Pass ``trace=callback`` to a pool (or to a PoolManager, which hands it to
every pool). The callback is called synchronously with a :class:`TraceEvent`
after each step, once the pool's books for that step are settled; it should
be quick. An exception from it is logged on the ``trio_pool.trace`` logger
(with its traceback) and dropped: a hook cannot fail a request, leak a
token, or crash a connection's task. With no callback the pool does no
tracing work.

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
    a connection closed (reported from the connection's own task);
    ``detail["reason"]`` (e.g. "closed by the server", "keep-alive expired",
    "discarded").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TraceCallback", "TraceEvent", "call_hook"]

log = logging.getLogger("trio_pool.trace")


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


def call_hook(hook: TraceCallback, event: TraceEvent) -> None:
    """Give ``event`` to ``hook``; an ``Exception`` from it is logged, not
    raised (``BaseException``s such as ``KeyboardInterrupt`` pass)."""
    try:
        hook(event)
    except Exception:
        log.exception("trace hook %r failed on the %r event", hook, event.name)
