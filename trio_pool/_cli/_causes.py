"""One short phrase naming why a fetch failed.

trio_pool's errors wrap the real cause: ``MaxRetryError.reason``,
``ProxyError.original_error``, ``raise ... from`` chains and trio's exception
groups (one per connection attempt). :func:`describe` walks all of them and
names the most telling cause it finds.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import trio

from .. import _exceptions as errors

__all__ = ["describe"]


def _links(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, errors.MaxRetryError) and exc.reason is not None:
        yield exc.reason
    if isinstance(exc, errors.ProxyError) and exc.original_error is not None:
        yield exc.original_error
    # Exception groups (a builtin only from Python 3.11) hold one error per
    # connection attempt.
    grouped = getattr(exc, "exceptions", None)
    if isinstance(grouped, tuple):
        yield from (e for e in grouped if isinstance(e, BaseException))
    if exc.__cause__ is not None:
        yield exc.__cause__
    elif exc.__context__ is not None and not exc.__suppress_context__:
        yield exc.__context__


def walk(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps, outermost first, each once."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 50:
        current = todo.pop(0)
        if any(current is other for other in seen):
            continue
        seen.append(current)
        todo.extend(_links(current))
    return seen


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _cause(exc: BaseException) -> str | None:
    """The phrase for one exception of the chain, if it is a telling one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, (errors.NameResolutionError, socket.gaierror)):
        host = getattr(exc, "host", "")
        return "name resolution failed" + (f" for {host!r}" if host else "")
    if isinstance(exc, errors.IncompleteRead):
        more = "" if exc.expected is None else f" ({exc.expected} more expected)"
        return f"body cut short after {exc.partial} bytes{more}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, (TimeoutError, trio.TooSlowError)):
        return "timed out"
    if isinstance(exc, errors.TimeoutError) and not isinstance(
        exc, errors.NewConnectionError
    ):
        return "timed out"
    return None


def _fallback(exc: BaseException) -> str:
    if isinstance(exc, errors.SSLError):
        return f"TLS error: {_first_line(str(exc))}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = _first_line(str(exc))
    if isinstance(exc, errors.ProtocolError):
        return text[0].lower() + text[1:] if text else "protocol error"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """A one-line phrase naming the cause of ``exc``, e.g. "connection refused"."""
    chain = walk(exc)
    through_proxy = any(isinstance(e, errors.ProxyError) for e in chain)
    phrase = next((p for p in map(_cause, chain) if p is not None), None)
    if phrase is None:
        # The innermost error of our own is the most specific message.
        ours = [e for e in chain if isinstance(e, errors.HTTPError)]
        ours = [e for e in ours if not isinstance(e, errors.MaxRetryError)] or ours
        phrase = _fallback(ours[-1] if ours else chain[-1])
    return f"proxy: {phrase}" if through_proxy else phrase
