"""KNOWN_DIFFERENCES: every difference from urllib3 the harness tolerates.

Each entry names the issue item it belongs to (or ``new-N``, described with
a reproduction in /work/notes/differential_findings.md), what it excludes or
normalises, and why, and an example case it applies to. Remove an entry when
its fix lands: ``test_known_differences_still_needed`` fails once an entry's
example matches urllib3 without it, and the differential tests then check the
fix. Entries marked ``deliberate`` stay (keep their examples differing).
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import unquote

from .cases import SKIP_HEADER, Case, example
from .harness import KnownDifference, Outcome, Sent, map_sent

# What a refusal may raise: a case can break more than one rule, and which
# check fires first is trio_pool's business (ValueError: an illegal method).
_REFUSALS = ("InvalidHeader", "ValueError", "ProtocolError")

# A method that is an HTTP token (RFC 9110 5.6.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# urllib3's request() puts fields in the query for these (after upper-casing
# the method); other methods get them in the body.
_URL_METHODS = {"DELETE", "GET", "HEAD", "OPTIONS"}


def _empty_body_framing(case: Case, outcome: Outcome, which: str) -> Outcome:
    """A request with an empty body: its framing headers and bytes dropped."""

    def fix(sent: Sent) -> Sent:
        if sent.body not in (b"", b"0\r\n\r\n"):
            return sent
        lines = tuple(
            h
            for h in sent.headers
            if h.split(b":")[0].lower() not in (b"transfer-encoding", b"content-length")
        )
        return replace(sent, headers=lines, framing="none", body=b"")

    return map_sent(outcome, fix)


# The methods trio_pool frames a missing body for: Content-Length: 0 for
# these, nothing for the ones urllib3 expects no body with.
_KNOWN_METHODS = {"POST", "PUT", "PATCH", "GET", "HEAD", "DELETE", "OPTIONS"}
_KNOWN_METHODS |= {"TRACE", "CONNECT"}


def _proxy_headers(case: Case, outcome: Outcome, which: str) -> Outcome:
    """Through a proxy: urllib3's own Accept dropped, Host spelt and placed
    the same (first) on both sides."""
    given = case.header_names()

    def fix(sent: Sent) -> Sent:
        host, accept, rest = [], [], []
        for line in sent.headers:
            name, _, value = line.partition(b":")
            if name.lower() == b"host" and "host" not in given:
                host.append(b"Host:" + value)
            elif name.lower() == b"accept":
                if line != b"Accept: */*" or "accept" in given:
                    accept.append(line)
            else:
                rest.append(line)
        return replace(sent, headers=(*host, *accept, *rest))

    return map_sent(outcome, fix)


def _incomplete_as_protocol(case: Case, outcome: Outcome, which: str) -> Outcome:
    if which == "ours" and outcome.error is not None:
        error = outcome.error.replace("IncompleteRead", "ProtocolError")
        return replace(outcome, error=error)
    return outcome


def _outer_space(values: list[str]) -> bool:
    return any(v != v.strip(" \t") for v in values)


def _joined_values(case: Case) -> list[str]:
    """Each header's values joined with ', ', as a proxy sends them."""
    values: dict[str, list[str]] = {}
    for name, value in case.given_headers():
        values.setdefault(name.lower(), []).append(value)
    return [", ".join(vs) for vs in values.values()]


def _sent_values(case: Case) -> list[str]:
    """The header values as they go on the wire (joined through a proxy)."""
    if case.via == "proxy":
        return _joined_values(case)
    return [v for _, v in case.given_headers()]


def _value_space_collapsed(case: Case, outcome: Outcome, which: str) -> Outcome:
    """Sent header lines with the spaces around each value dropped."""

    def fix(sent: Sent) -> Sent:
        lines = []
        for line in sent.headers:
            name, sep, value = line.partition(b":")
            lines.append(name + sep + b" " + value.strip(b" \t") if sep else line)
        return replace(sent, headers=tuple(lines))

    return map_sent(outcome, fix)


def _first_spelling(case: Case, outcome: Outcome, which: str) -> Outcome:
    """Header lines of a name given in several spellings: grouped at the
    first one's place and spelt like it (as an HTTPHeaderDict does)."""
    variants = _variant_names(case)

    def fix(sent: Sent) -> Sent:
        groups: dict[object, list[bytes]] = {}
        for index, line in enumerate(sent.headers):
            name, sep, value = line.partition(b":")
            if name.lower() not in variants:
                groups[index] = [line]
            elif name.lower() in groups:
                spelt = groups[name.lower()][0].partition(b":")[0]
                groups[name.lower()].append(spelt + sep + value)
            else:
                groups[name.lower()] = [line]
        lines = tuple(line for group in groups.values() for line in group)
        return replace(sent, headers=lines)

    return map_sent(outcome, fix)


def _variant_names(case: Case) -> set[bytes]:
    spellings: dict[str, set[str]] = {}
    for name, _ in case.given_headers():
        spellings.setdefault(name.lower(), set()).add(name)
    return {k.encode("latin-1") for k, v in spellings.items() if len(v) > 1}


def _case_variants(case: Case) -> bool:
    names = [n for n, _ in case.given_headers()]
    return len({n.lower() for n in names}) < len(set(names))


def _host_first(case: Case, outcome: Outcome, which: str) -> Outcome:
    def fix(sent: Sent) -> Sent:
        host = [h for h in sent.headers if h.split(b":")[0].lower() == b"host"]
        rest = [h for h in sent.headers if h.split(b":")[0].lower() != b"host"]
        return replace(sent, headers=(*host, *rest))

    return map_sent(outcome, fix)


def _without_dots(path: bytes) -> bytes:
    """RFC 3986 5.2.4's remove_dot_segments, for literal '.' and '..'."""
    out: list[bytes] = []
    segments = path.split(b"/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == b".":
            if last:
                out.append(b"")
        elif segment == b"..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append(b"")
        else:
            out.append(segment)
    return b"/".join(out) or b"/"


def _dots_removed(case: Case, outcome: Outcome, which: str) -> Outcome:
    def fix(sent: Sent) -> Sent:
        method, target, version = sent.request_line.split(b" ", 2)
        path, sep, query = target.partition(b"?")
        target = _without_dots(path) + sep + query
        return replace(sent, request_line=b" ".join((method, target, version)))

    return map_sent(outcome, fix)


def _resends(case: Case) -> bool:
    """Whether the body may go more than once (redirects, retries)."""
    if case.path.startswith("/redirect/"):
        return case.redirect
    retried = ("/flaky/", "/status/", "/close", "/short", "/version/", "/malformed/")
    return case.path.startswith(retried)


def _dechunked(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def _chunks_joined(case: Case, outcome: Outcome, which: str) -> Outcome:
    """A chunked body as one chunk (chunk boundaries ignored)."""

    def fix(sent: Sent) -> Sent:
        if sent.framing != "chunked":
            return sent
        data = _dechunked(sent.body)
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data) if data else sent.body
        return replace(sent, body=body)

    return map_sent(outcome, fix)


def _otherwise_sendable(case: Case) -> bool:
    """No other reason to refuse: a plain method, header names and values."""
    names = [n for n, _ in case.given_headers()]
    return (
        _TOKEN.fullmatch(case.method) is not None
        and not any(" " in n for n in names)
        and not _outer_space(_sent_values(case))
    )


def _joined_lines(case: Case, outcome: Outcome, which: str) -> Outcome:
    """Header lines of one name (any case) joined into the first one."""

    def fix(sent: Sent) -> Sent:
        groups: dict[bytes, tuple[bytes, list[bytes]]] = {}
        for line in sent.headers:
            name, _, value = line.partition(b":")
            groups.setdefault(name.lower(), (name, []))[1].append(value.strip())
        lines = tuple(n + b": " + b", ".join(vs) for n, vs in groups.values())
        return replace(sent, headers=lines)

    return map_sent(outcome, fix)


def _two_hosts(case: Case) -> bool:
    hosts = [n for n, _ in case.given_headers() if n.lower() == "host"]
    return len(hosts) > 1


def _stripped_response_values(case: Case, outcome: Outcome, which: str) -> Outcome:
    headers = tuple((n, v.strip(" \t")) for n, v in outcome.headers)
    return replace(outcome, headers=headers)


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        id="7",
        example=example(headers=(("Host", SKIP_HEADER),)),
        what="Host: SKIP_HEADER: the whole comparison",
        why="urllib3 sends no Host line; trio_pool raises ValueError (being "
        "fixed with SKIP_HEADER support)",
        applies=lambda c: ("Host", SKIP_HEADER) in c.given_headers(),
        exclude=True,
    ),
    KnownDifference(
        id="13",
        example=example(via="proxy"),
        what="through a ProxyManager: urllib3's default 'Accept: */*' line, "
        "the default Host line's spelling, and the position of both (and of "
        "a caller's Accept, which takes the default's place in urllib3)",
        why="trio_pool sends no Accept and a lower-case 'host' (being fixed)",
        applies=lambda c: c.via == "proxy",
        normalise=_proxy_headers,
    ),
    KnownDifference(
        id="new-28",
        example=example(
            payload="json",
            json=[],
            headers=(("X-Test", "1"),),
            header_form="bytes",
        ),
        what="headers given as bytes with json= or through a ProxyManager: "
        "the whole comparison",
        why="urllib3 raises TypeError there (it handles the names with str "
        "methods); trio_pool sends them, as it does bytes headers everywhere. "
        "urllib3's limitation",
        applies=lambda c: (
            c.header_form == "bytes" and (c.payload == "json" or c.via == "proxy")
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-29",
        example=example(
            headers=(("Accept-Encoding", SKIP_HEADER),), header_form="bytes"
        ),
        what="SKIP_HEADER given as bytes: the whole comparison",
        why="urllib3 compares with the str sentinel only and sends "
        "b'@@@SKIP_HEADER@@@' literally; trio_pool honours it in either form",
        applies=lambda c: (
            c.header_form == "bytes"
            and any(v == SKIP_HEADER for _, v in c.given_headers())
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-1",
        example=example(payload="fields", fields=(("a", "b"),)),
        what="fields= with GET/HEAD/DELETE/OPTIONS plus encode_multipart= and "
        "multipart_boundary=: the whole comparison",
        why="urllib3 hands those two keywords on to urlopen, which raises "
        "TypeError; trio_pool drops them whatever the method",
        applies=lambda c: (
            c.payload == "fields"
            and c.encoding_kwargs
            and c.method.upper() in _URL_METHODS
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-3",
        example=example(
            method="POST",
            payload="body",
            body_kind="bytes",
            chunks=(b"x",),
            framing="te-custom",
        ),
        what="a caller's Transfer-Encoding other than chunked, with chunked=False",
        why="trio_pool refuses it (InvalidHeader) as it does with chunked=True; "
        "urllib3 sends the body unframed under it (a server answers 400). "
        "Probably to be marked deliberate with the chunked=True case",
        applies=lambda c: c.framing == "te-custom" and not c.chunked,
        refused=_REFUSALS,
    ),
    KnownDifference(
        id="new-4",
        example=example(headers=(("X-Test", " v"),)),
        what="a header value with leading or trailing spaces or tabs: the "
        "space after each sent header line's colon compared collapsed",
        why="urllib3 sends the spaces verbatim; trio_pool drops them (they "
        "are OWS, not part of the value, RFC 9110 5.5; h11 refuses them). "
        "Deliberate: servers see the same value",
        applies=lambda c: _outer_space(_sent_values(c)),
        normalise=_value_space_collapsed,
        deliberate=True,
    ),
    KnownDifference(
        id="new-8",
        example=example(
            payload="fields",
            fields=(("a", "b"),),
            path="/echo?x=1",
            encoding_kwargs=False,
        ),
        what="fields= for GET/HEAD/DELETE/OPTIONS on a URL that already has a "
        "query: the whole comparison (the server answers by the query)",
        why="urllib3 always appends '?' + fields (giving 'a?x=1?y=2'); "
        "trio_pool appends '&' when the URL has a '?'",
        applies=lambda c: (
            c.payload == "fields" and c.method.upper() in _URL_METHODS and "?" in c.path
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-9",
        example=example(path="/short", retries=False),
        what="a body shorter than its Content-Length: trio_pool's IncompleteRead "
        "read as ProtocolError (also as a MaxRetryError's reason)",
        why="urllib3 raises ProtocolError('Connection broken: IncompleteRead') "
        "from preload; trio_pool its IncompleteRead (a ProtocolError "
        "subclass there, not in urllib3)",
        applies=lambda c: c.path.startswith("/short"),
        normalise=_incomplete_as_protocol,
    ),
    KnownDifference(
        id="new-11",
        example=example(via="proxy", path="/close", retries=False),
        what="through a forwarding ProxyManager, a connection closed without "
        "a response: the whole comparison",
        why="urllib3 reports any connection failure on a forwarding proxy's "
        "connection as ProxyError('Unable to connect to proxy'); trio_pool "
        "as ProtocolError (it reports only the proxy's own leg as ProxyError), "
        "and urllib3 then retries it as a connection error whatever the "
        "method (POST too), trio_pool as a read error",
        applies=lambda c: c.via == "proxy" and c.path.startswith("/close"),
        exclude=True,
    ),
    KnownDifference(
        id="new-12",
        example=example(headers=(("X-Test", "1"), ("Host", "h"))),
        what="a caller's Host header: its position (moved to the front on both sides)",
        why="trio_pool sends a caller's Host first, where its default goes; "
        "urllib3 sends it among the caller's headers, in their order",
        applies=lambda c: "host" in c.header_names(),
        normalise=_host_first,
    ),
    KnownDifference(
        id="new-13",
        example=example(via="pool", path="/redirect/302?to=rel%2Ftarget"),
        what="HTTPConnectionPool following a relative Location without a "
        "leading '/' (e.g. 'rel/target'): the whole comparison",
        why="urllib3's pool passes the Location unresolved to urlopen, which "
        "takes 'rel' for a host and raises HostChangedError; trio_pool "
        "resolves it against the request URL (RFC 3986) and follows it",
        applies=lambda c: c.via == "pool" and "to=rel" in c.path,
        exclude=True,
    ),
    KnownDifference(
        id="new-14",
        example=example(
            headers=(("Host", "a"), ("Host", "b")), header_form="headerdict"
        ),
        what="more than one Host header (an HTTPHeaderDict with Host twice)",
        why="trio_pool refuses (InvalidHeader, h11 allows one Host); urllib3 "
        "sends them. Probably deliberate. (Through a proxy both join them "
        "into one line.)",
        applies=lambda c: c.via != "proxy" and _two_hosts(c),
        refused=_REFUSALS,
    ),
    KnownDifference(
        id="new-15",
        example=example(
            method="POST",
            path="/redirect/307?to=%2Fecho",
            payload="body",
            body_kind="iter",
            chunks=(b"a",),
        ),
        what="an iterator body on a request that may be redirected or "
        "retried: the whole comparison",
        why="urllib3 sends the used-up iterator again (an empty chunked body) "
        "and carries on; trio_pool raises UnrewindableBodyError. Probably "
        "deliberate (urllib3 silently sends a different body)",
        applies=lambda c: c.payload == "body" and c.body_kind == "iter" and _resends(c),
        exclude=True,
    ),
    KnownDifference(
        id="new-16",
        example=example(method="POST", payload="body", body_kind="file", large=True),
        what="a file body longer than 16 KiB: its chunk boundaries (chunked "
        "bodies compared as one chunk)",
        why="urllib3 reads files in blocks of its blocksize (16384) and sends "
        "a chunk per block; trio_pool reads larger blocks",
        applies=lambda c: c.payload == "body" and c.body_kind == "file" and c.large,
        normalise=_chunks_joined,
    ),
    KnownDifference(
        id="new-17",
        example=example(
            method="POST",
            chunked=True,
            payload="body",
            body_kind="bytes",
            chunks=(b"abc",),
            framing="cl-wrong",
        ),
        what="chunked=True with a caller's wrong Content-Length: the whole comparison",
        why="trio_pool does not refuse the wrong length here (it does with "
        "chunked=False): it sends Transfer-Encoding: chunked and the caller's "
        "Content-Length together, as urllib3 does (RFC 9112 6.2: a sender "
        "must not). A right length is framed by Content-Length only (new-7)",
        applies=lambda c: c.chunked and c.payload == "body" and c.framing == "cl-wrong",
        exclude=True,
    ),
    KnownDifference(
        id="new-18",
        example=example(via="proxy", path="/redirect/302?to=OTHER%2Flanded"),
        what="through a ProxyManager, a redirect to another origin: the whole "
        "comparison",
        why="urllib3 keeps the first origin's Host header on the redirected "
        "request (its proxy headers are built once); trio_pool sends the new "
        "origin's Host (urllib3's bug)",
        applies=lambda c: c.via == "proxy" and "OTHER" in c.path and c.redirect,
        exclude=True,
    ),
    KnownDifference(
        id="new-20",
        example=example(path="/version/1.2"),
        what="a status line of HTTP/1.2 or HTTP/0.9: the whole comparison",
        why="urllib3 (http.client) reads HTTP/1.2 as 1.1 and HTTP/0.9 as 1.0; "
        "trio_pool (since the fix of item 14) raises ProtocolError for any "
        "version but 1.0 and 1.1. Both reject HTTP/2.0",
        applies=lambda c: c.path in ("/version/1.2", "/version/0.9"),
        exclude=True,
    ),
    KnownDifference(
        id="new-21",
        example=example(method="POST", headers=(("X-Test", "1"), ("x-test", "2"))),
        what="one header name given in two spellings (a dict with 'X-Test' "
        "and 'x-test'): their lines grouped at the first and spelt like it",
        why="for body methods (POST, PUT, ...) urllib3 folds them into one "
        "HTTPHeaderDict and sends the lines together, with the first "
        "spelling (not for GET); trio_pool keeps each line where and as given",
        applies=_case_variants,
        normalise=_first_spelling,
    ),
    KnownDifference(
        id="new-22",
        example=example(payload="body", framing="cl-wrong"),
        what="body=None with a caller's Content-Length other than 0: refused",
        why="a Content-Length that disagrees with the body is refused "
        "(InvalidHeader, as for a wrong length with a bytes body); urllib3 "
        "sends the header with no body and the server waits. Deliberate",
        applies=lambda c: (
            c.payload == "body"
            and c.body_kind == "none"
            and c.framing == "cl-wrong"
            and not c.chunked
            and _otherwise_sendable(c)
        ),
        refused=("InvalidHeader",),
        deliberate=True,
    ),
    KnownDifference(
        id="new-23",
        example=example(path="/headers?X-A=0%20"),
        what="response header values with leading/trailing whitespace: values "
        "compared stripped",
        why="http.client keeps trailing spaces of a value ('0 '); h11 strips "
        "the OWS around it as RFC 9110 5.5 says ('0'). Probably deliberate",
        applies=lambda c: c.path.startswith("/headers"),
        normalise=_stripped_response_values,
    ),
    KnownDifference(
        id="new-25",
        example=example(
            method="POST",
            path="/redirect/307?to=%2Fecho",
            payload="body",
            body_kind="file",
            chunks=(b"a",),
        ),
        what="a file body redirected by a PoolManager or ProxyManager (not "
        "303): the whole comparison",
        why="urllib3's manager re-sends the file from where the first request "
        "left it (an empty body: the position is taken afresh per pool call); "
        "trio_pool rewinds it and sends the body again",
        applies=lambda c: (
            c.via != "pool"
            and c.payload == "body"
            and c.body_kind == "file"
            and c.redirect
            and c.path.startswith("/redirect/")
            and not c.path.startswith("/redirect/303")
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-26",
        example=example(method="HEAD", path="/redirect/303?to=%2Fecho"),
        what="HEAD answered by a 303 (redirects followed): the whole comparison",
        why="urllib3 follows with GET (and returns the body); trio_pool keeps "
        "HEAD (RFC 9110 15.4.4 allows either; trio_pool's is the usual choice)",
        applies=lambda c: (
            c.method.upper() == "HEAD"
            and c.redirect
            and "/redirect/303" in unquote(c.path)
        ),
        exclude=True,
    ),
    KnownDifference(
        id="new-27",
        example=example(via="proxy", headers=(("X-Test", "a"), ("x-test", "b"))),
        what="through a ProxyManager, one name in two spellings in a plain "
        "dict: lines of one name joined into the first (', ')",
        why="trio_pool's proxy path joins repeated names case-insensitively; "
        "urllib3 copies the dict's keys as they are and sends one line per "
        "spelling",
        applies=lambda c: (
            c.via == "proxy"
            and c.header_form != "headerdict"
            and bool(_variant_names(c))
        ),
        normalise=_joined_lines,
    ),
    KnownDifference(
        id="deliberate-content-length",
        example=example(
            method="POST",
            payload="body",
            body_kind="bytes",
            chunks=(b"abc",),
            framing="cl-wrong",
        ),
        what="a caller's Content-Length that disagrees with the body",
        why="trio_pool refuses to send it; urllib3 sends it and the server "
        "then misreads the connection",
        applies=lambda c: c.framing == "cl-wrong" and c.payload == "body",
        refused=_REFUSALS,
        deliberate=True,
    ),
    KnownDifference(
        id="deliberate-custom-transfer-encoding",
        example=example(
            method="POST",
            payload="body",
            body_kind="bytes",
            chunks=(b"x",),
            framing="te-custom",
            chunked=True,
        ),
        what="a caller's Transfer-Encoding other than chunked, with chunked=True",
        why="trio_pool refuses; urllib3 sends chunked framing under a header "
        "that does not say chunked",
        applies=lambda c: c.framing == "te-custom" and c.chunked,
        refused=_REFUSALS,
        deliberate=True,
    ),
    KnownDifference(
        id="deliberate-header-name-space",
        example=example(headers=(("X Spaced", "1"),)),
        what="a header name containing a space",
        why="not a token (RFC 9110); h11 refuses it, http.client sends it",
        applies=lambda c: any(" " in n for n, _ in c.headers),
        refused=_REFUSALS,
        deliberate=True,
    ),
    KnownDifference(
        id="deliberate-strict-response-headers",
        example=example(path="/malformed/nocolon", retries=False),
        what="responses with malformed header lines (no colon, a space before "
        "the colon, an obsolete line fold): the whole comparison",
        why="h11 parses response heads strictly and trio_pool raises "
        "ProtocolError (retried as a read error); http.client tolerates them",
        applies=lambda c: c.path.startswith("/malformed/"),
        exclude=True,
        deliberate=True,
    ),
)
