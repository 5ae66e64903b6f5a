"""A raw recording HTTP/1.1 server for the differential harness.

Plain blocking sockets, one thread per connection, so that urllib3 (in a worker
thread) and trio_pool (in the trio loop) talk to exactly the same thing. It
records every request's bytes as they arrived -- the head up to and including
the blank line, and the body with its framing (chunk sizes and all) -- and
answers from a script chosen by the request's path. It parses only as much as
it needs to find where a request ends; it never normalises what it records.

Scripted paths (anything else gets ``200`` with body ``ok``):

``/status/<code>?retry_after=V&location=L``
    That status; optional ``Retry-After`` and ``Location``.
``/redirect/<code>?to=L``
    That status with ``Location: L``; ``OTHER`` in ``L`` becomes the last
    listening port's origin (for cross-origin redirects).
``/flaky/<n>?status=503``
    The first ``n`` requests since :meth:`RecordingServer.reset` answer
    ``status`` with ``Retry-After: 0``; later ones ``200``.
``/encoded/<codings>``
    A fixed body compressed by each comma-separated coding (``gzip``,
    ``deflate``); ``?bad=1`` sends bytes that do not decode.
``/chunked``
    A chunked response of a few pieces.
``/headers?Name=value&...``
    Each query pair as a response header, in order.
``/malformed/<kind>``
    A response head h11 rejects but http.client tolerates.
``/version/<v>``
    A status line ``HTTP/<v> 200 OK``.
``/close``
    Closes the connection without answering.
``/short``
    Promises 10 body bytes, sends 5 and closes.
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

BODY = b"differential " * 8
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it.

    Attributes:
        port: the listening port it arrived on (which origin).
        head: the request line and header lines, exactly as received,
            including the final blank line.
        body: the body bytes as received, framing included.
        framing: ``"length"``, ``"chunked"``, ``"none"``, or
            ``"unframeable"`` (a Transfer-Encoding not ending in chunked:
            answered ``400`` and closed).
        content: the body with chunked framing removed.
    """

    port: int
    head: bytes
    body: bytes
    framing: str
    content: bytes

    @property
    def request_line(self) -> bytes:
        """The first line, without its CRLF."""
        return self.head.split(b"\r\n", 1)[0]

    @property
    def header_lines(self) -> list[bytes]:
        """The header lines in wire order, as received."""
        return [line for line in self.head.split(b"\r\n")[1:] if line]


class _Closed(Exception):
    """The peer closed or broke the connection mid-request."""


@dataclass
class _Reader:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buf += data

    def until(self, marker: bytes, limit: int = _MAX_HEAD) -> bytes:
        """Bytes up to and including ``marker``."""
        while (at := self.buf.find(marker)) < 0:
            if len(self.buf) > limit:
                raise _Closed
            self._fill()
        end = at + len(marker)
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _headers(head: bytes) -> list[tuple[bytes, bytes]]:
    pairs = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            pairs.append((name.strip().lower(), value.strip()))
    return pairs


def _read_body(reader: _Reader, head: bytes) -> tuple[bytes, str, bytes]:
    """(raw body, framing, content) for the request whose head is ``head``."""
    headers = _headers(head)
    te = b",".join(v for n, v in headers if n == b"transfer-encoding").lower()
    if te and not te.rstrip().endswith(b"chunked"):
        return b"", "unframeable", b""
    if te:
        raw, content = bytearray(), bytearray()
        while True:
            size_line = reader.until(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (trailer := reader.until(b"\r\n")) != b"\r\n":
                    raw += trailer
                raw += trailer
                return bytes(raw), "chunked", bytes(content)
            chunk = reader.exactly(size + 2)
            raw += chunk
            content += chunk[:-2]
    lengths = [v for n, v in headers if n == b"content-length"]
    if lengths:
        body = reader.exactly(int(lengths[0]))
        return body, "length", body
    return b"", "none", b""


class RecordingServer:
    """The server: :meth:`start`, then ``records`` fills as requests arrive.

    Several listening ports can share one server (one recording) so that
    cross-origin redirects are seen too.
    """

    def __init__(self, ports: int = 2) -> None:
        self._lock = threading.Lock()
        self._records: list[Recorded] = []
        self._flaky: dict[str, int] = {}
        self._listeners = [self._listen() for _ in range(ports)]
        self._conns: set[socket.socket] = set()
        self._stopping = False

    @staticmethod
    def _listen() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        return sock

    @property
    def ports(self) -> list[int]:
        """The listening ports, in creation order."""
        return [s.getsockname()[1] for s in self._listeners]

    def start(self) -> None:
        """Start one accepting thread per listening port."""
        for sock in self._listeners:
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def stop(self) -> None:
        """Close every listening socket and connection."""
        self._stopping = True
        with self._lock:
            socks = [*self._listeners, *self._conns]
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def reset(self) -> None:
        """Forget the recorded requests and the ``/flaky`` counters."""
        with self._lock:
            self._records.clear()
            self._flaky.clear()

    def records(self) -> list[Recorded]:
        """The requests received since the last :meth:`reset`."""
        with self._lock:
            return list(self._records)

    def _accept(self, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        while not self._stopping:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, port), daemon=True).start()

    def _serve(self, conn: socket.socket, port: int) -> None:
        reader = _Reader(conn)
        try:
            while self._one(reader, conn, port):
                pass
        except (_Closed, OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _one(self, reader: _Reader, conn: socket.socket, port: int) -> bool:
        """Serve one request; whether the connection stays open."""
        head = reader.until(b"\r\n\r\n")
        raw, framing, content = _read_body(reader, head)
        record = Recorded(port, head, raw, framing, content)
        with self._lock:
            self._records.append(record)
        if framing == "unframeable":
            # RFC 9112 6.3: a request whose length cannot be known is a 400,
            # and the connection cannot be read any further.
            conn.sendall(_response(400, [("Connection", "close")], b"", False))
            return False
        try:
            reply, keep = self._answer(record)
        except ValueError:  # a path the script cannot read, e.g. /status/x
            reply, keep = _response(400, [], b"", False), True
        closing = any(
            n == b"connection" and v.lower() == b"close" for n, v in _headers(head)
        )
        if closing and reply:
            # Say so, so that neither client races the close by reusing it.
            line, rest = reply.split(b"\r\n", 1)
            reply = line + b"\r\nConnection: close\r\n" + rest
        if reply:
            conn.sendall(reply)
        return keep and not closing

    def _flaky_count(self, path: str) -> int:
        with self._lock:
            seen = self._flaky.get(path, 0)
            self._flaky[path] = seen + 1
        return seen

    def _answer(self, record: Recorded) -> tuple[bytes, bool]:
        """(response bytes, keep the connection) for ``record``."""
        parts = record.request_line.split(b" ")
        method = parts[0]
        target = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        split = urlsplit(target)
        path, query = split.path, parse_qsl(split.query, keep_blank_values=True)
        q = dict(query)
        segs = path.split("/")
        kind = segs[1] if len(segs) > 1 else ""
        arg = unquote(segs[2]) if len(segs) > 2 else ""
        head_only = method == b"HEAD"
        if kind == "close":
            return b"", False
        if kind == "short":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", False
        if kind == "version":
            return _response(200, [], b"ok", head_only, version=arg), True
        if kind == "malformed":
            return _malformed(arg), False
        if kind in ("status", "redirect"):
            other = f"http://127.0.0.1:{self.ports[-1]}"
            return _status(kind, arg, q, head_only, other), True
        if kind == "flaky":
            if self._flaky_count(path) < int(arg or "1"):
                code = int(q.get("status", "503"))
                return _response(code, [("Retry-After", "0")], b"", head_only), True
            return _response(200, [], b"ok", head_only), True
        if kind == "encoded":
            return _encoded(arg, q, head_only), True
        if kind == "chunked":
            return _chunked(head_only), True
        if kind == "headers":
            return _response(200, query, b"ok", head_only), True
        return _response(200, [("Content-Type", "text/plain")], b"ok", head_only), True


_REASONS = {200: "OK", 301: "Moved", 302: "Found", 303: "See Other"}


def _response(
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    head_only: bool,
    version: str = "1.1",
) -> bytes:
    reason = _REASONS.get(status, "Whatever")
    lines = [f"HTTP/{version} {status} {reason}"]
    lines += [f"{n}: {v}" for n, v in headers]
    no_body = status in (204, 304) or 100 <= status < 200
    if not no_body:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only or no_body else head + body


def _status(
    kind: str, arg: str, q: dict[str, str], head_only: bool, other: str
) -> bytes:
    code = int(arg or "200")
    headers = []
    if "retry_after" in q:
        headers.append(("Retry-After", q["retry_after"]))
    location = q.get("to" if kind == "redirect" else "location")
    if location is not None:
        headers.append(("Location", location.replace("OTHER", other)))
    return _response(code, headers, b"", head_only)


def _encoded(codings: str, q: dict[str, str], head_only: bool) -> bytes:
    body = BODY
    names = [c for c in codings.split(",") if c]
    for name in names:
        body = gzip.compress(body, mtime=0) if name == "gzip" else zlib.compress(body)
    if q.get("bad"):
        body = b"\x00not compressed at all"
    headers = [("Content-Encoding", ", ".join(names))] if names else []
    return _response(200, headers, body, head_only)


def _chunked(head_only: bool) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    if head_only:
        return head
    return head + b"3\r\nabc\r\n5\r\ndefgh\r\n1\r\ni\r\n0\r\n\r\n"


_MALFORMED = {
    # A header line without a colon.
    "nocolon": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nno colon here\r\n\r\nok",
    # A space before the colon.
    "spacename": b"HTTP/1.1 200 OK\r\nX-Bad : v\r\nContent-Length: 2\r\n\r\nok",
    # An obsolete line fold.
    "fold": b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
}


def _malformed(kind: str) -> bytes:
    return _MALFORMED.get(kind, _MALFORMED["nocolon"])
