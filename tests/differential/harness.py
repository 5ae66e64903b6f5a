"""Send one :class:`Case` through urllib3 and trio_pool and compare.

What is compared, per request the server received: the request line (method
and target), every header line byte for byte and in order, the body framing
(Content-Length, chunked or none) and the body's bytes with their framing; and
what each client returned: status, response headers in order, body, or the
exception's class name (with ``MaxRetryError``'s reason's class name).

Normalised, and nothing else: the default User-Agent line (each library names
itself; a caller's User-Agent is compared like any header), and a random
multipart boundary (32 hex digits in both libraries), replaced wherever it
occurs by one fixed string of the same length. Most cases fix the boundary by
passing ``multipart_boundary=`` to both clients instead.
Everything else that differs today is excluded only through
:data:`tests.differential.known.KNOWN_DIFFERENCES`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import trio
import urllib3

import trio_pool

from .cases import Case
from .server import Recorded, RecordingServer

_DEFAULT_AGENTS = (b"python-urllib3/", b"python-trio-pool/")


@dataclass(frozen=True)
class Sent:
    """One request as the server saw it, User-Agent normalised."""

    origin: int
    request_line: bytes
    headers: tuple[bytes, ...]
    default_agent: bool
    framing: str
    body: bytes

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 80 else self.body[:60]
        more = "" if body is self.body else f"...({len(self.body)} bytes)"
        return (
            f"Sent(origin={self.origin}, {self.request_line!r}, "
            f"headers={list(self.headers)!r}, default_agent={self.default_agent}, "
            f"framing={self.framing!r}, body={body!r}{more})"
        )


@dataclass(frozen=True)
class Outcome:
    """Everything one client did for one case."""

    sent: tuple[Sent, ...]
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: str | None = None


_RANDOM_BOUNDARY = re.compile(rb"multipart/form-data; boundary=([0-9a-f]{32})$")
_BODY_BOUNDARY = re.compile(rb"(?:[0-9a-f]+\r\n)?--([0-9a-f]{32})\r\n")


def _fixed_boundary(record: Recorded) -> tuple[list[bytes], bytes]:
    """The header lines and body, a random multipart boundary made fixed.

    The boundary is taken from the Content-Type, or (when the caller's
    Content-Type replaced it) from the start of the body.
    """
    lines, body = record.header_lines, record.body
    found = [m[1] for m in map(_RANDOM_BOUNDARY.search, lines) if m]
    if not found and (match := _BODY_BOUNDARY.match(body)):
        found = [match[1]]
    for boundary in found:
        fixed = b"f" * 32
        lines = [ln.replace(boundary, fixed) for ln in lines]
        body = body.replace(boundary, fixed)
    return lines, body


def _sent(record: Recorded, ports: list[int]) -> Sent:
    lines, default_agent = [], False
    header_lines, body = _fixed_boundary(record)
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.lower() == b"user-agent" and value.strip().startswith(_DEFAULT_AGENTS):
            default_agent = True
            continue
        lines.append(line)
    return Sent(
        origin=ports.index(record.port),
        request_line=record.request_line,
        headers=tuple(lines),
        default_agent=default_agent,
        framing=record.framing,
        body=body,
    )


def error_name(exc: BaseException) -> str:
    """The class name, with a MaxRetryError's reason's."""
    name = type(exc).__name__
    reason = getattr(exc, "reason", None)
    if name == "MaxRetryError" and isinstance(reason, BaseException):
        name += f"({type(reason).__name__})"
    return name


def _outcome(result: Any, records: list[Recorded], ports: list[int]) -> Outcome:
    sent = tuple(_sent(r, ports) for r in records)
    if isinstance(result, BaseException):
        return Outcome(sent, error=error_name(result))
    return Outcome(
        sent,
        status=result.status,
        headers=tuple(result.headers.iteritems()),
        body=result.data,
    )


@dataclass
class Clients:
    """Both clients, created once per test, and the server they share."""

    server: RecordingServer
    theirs: Any  # a urllib3 PoolManager, ProxyManager or HTTPConnectionPool
    ours: Any  # the trio_pool counterpart, already entered

    def url(self, case: Case) -> str:
        """The URL argument for ``case``."""
        if case.via == "pool":
            return case.path
        return f"http://127.0.0.1:{self.server.ports[0]}{case.path}"

    def run_theirs(self, case: Case) -> Outcome:
        """Send ``case`` through urllib3 (call from a worker thread)."""
        self.server.reset()
        kw = case.request_kwargs(urllib3.Retry, urllib3.HTTPHeaderDict)
        try:
            result: Any = self.theirs.request(
                case.method, self.url(case), timeout=_timeout(urllib3.Timeout), **kw
            )
        except Exception as exc:
            result = exc
        return _outcome(result, self.server.records(), self.server.ports)

    async def _ours(self, case: Case) -> Any:
        kw = case.request_kwargs(trio_pool.Retry, trio_pool.HTTPHeaderDict)
        try:
            with trio.fail_after(20):
                return await self.ours.request(
                    case.method,
                    self.url(case),
                    timeout=_timeout(trio_pool.Timeout),
                    **kw,
                )
        except Exception as exc:
            return exc

    def run_ours(self, case: Case) -> Outcome:
        """Send ``case`` through trio_pool (from a worker thread of its loop)."""
        self.server.reset()
        result = trio.from_thread.run(self._ours, case)
        return _outcome(result, self.server.records(), self.server.ports)


def _timeout(timeout_class: Any) -> Any:
    return timeout_class(connect=2, read=2)


@dataclass(frozen=True)
class KnownDifference:
    """One entry of the table of differences the harness tolerates today.

    Attributes:
        id: the issue item (``"12"``), or ``"new-N"`` for one this harness
            found (see /work/notes/differential_findings.md).
        example: a case it applies to, which differs without it (checked by
            ``test_known_differences_still_needed``: remove the entry when
            that test says it is no longer needed).
        what: what is excluded or normalised.
        why: why it differs (and whether a fix is on its way).
        deliberate: a difference that will stay.
        applies: which cases it concerns.
        normalise: rewrites one client's outcome (``which`` is ``"ours"``
            or ``"theirs"``) before they are compared.
        exclude: the whole comparison is skipped for these cases (neither
            client is run): for differences that leave nothing comparable.
        refused: for inputs trio_pool refuses on purpose: the exception class
            names it may raise instead of sending a request (the server must
            have received no complete request); urllib3 is then not run (it
            would put a request on the wire that the server cannot frame).
    """

    id: str
    example: Case
    what: str
    why: str
    applies: Callable[[Case], bool]
    normalise: Callable[[Case, Outcome, str], Outcome] | None = None
    exclude: bool = False
    refused: tuple[str, ...] = ()
    deliberate: bool = False


def compare(clients: Clients, case: Case, known: tuple[KnownDifference, ...]) -> None:
    """Send ``case`` through both clients and fail if they differ.

    Raises:
        AssertionError: with both outcomes, if they differ after the
            applicable entries of ``known`` are applied.
    """
    entries = [k for k in known if k.applies(case)]
    if any(k.exclude for k in entries):
        return
    refusal = next((k for k in entries if k.refused), None)
    if refusal is not None:
        ours = clients.run_ours(case)
        assert ours.error in refusal.refused and not ours.sent, (
            f"known difference {refusal.id} expects a refusal {refusal.refused}, "
            f"got {ours}\ncase:     {case}"
        )
        return
    theirs = clients.run_theirs(case)
    ours = clients.run_ours(case)
    for entry in entries:
        if entry.normalise is not None:
            theirs = entry.normalise(case, theirs, "theirs")
            ours = entry.normalise(case, ours, "ours")
    applied = ", ".join(k.id for k in entries) or "none"
    assert ours == theirs, (
        f"trio_pool and urllib3 differ (known differences applied: {applied})\n"
        f"case:     {case}\n"
        f"urllib3:  {theirs}\n"
        f"trio_pool:{ours}"
    )


def map_sent(outcome: Outcome, fn: Callable[[Sent], Sent]) -> Outcome:
    """``outcome`` with ``fn`` applied to each request the server saw."""
    return replace(outcome, sent=tuple(fn(s) for s in outcome.sent))
