"""The argument parser, and turning its result into option values."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from trio_pool import LocationValueError, __version__, parse_url

from ._options import (
    BenchOptions,
    ClientOptions,
    DemoOptions,
    GetOptions,
    RequestSpec,
    ServeOptions,
    UsageError,
)

__all__ = ["Options", "parse"]

Options = GetOptions | BenchOptions | ServeOptions | DemoOptions

#: Used when ``bench`` is given neither ``-d`` nor ``-n``.
DEFAULT_BENCH_SECONDS = 10.0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _number(
    kind: Callable[[str], float], low: float, strict: bool
) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (strict and value == low):
            sign = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"must be {sign} {low:g}, not {text}")
        return value

    return check


_SECONDS = _number(float, 0, strict=True)
_COUNT = _number(int, 1, strict=False)
_RETRIES = _number(int, 0, strict=False)
_PORT = _number(int, 0, strict=False)


def _json_text(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    return text


def _request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-X", "--method", help="request method (default GET, or POST with a body)"
    )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    body = parser.add_mutually_exclusive_group()
    body.add_argument(
        "--json",
        type=_json_text,
        metavar="TEXT",
        help="send TEXT (checked to be JSON) with Content-Type: application/json",
    )
    body.add_argument(
        "--data",
        metavar="TEXT",
        help="send TEXT as the body; @FILE sends a file, @- stdin",
    )


def _client_arguments(
    parser: argparse.ArgumentParser, retries: int | None, concurrency: int
) -> None:
    parser.add_argument(
        "-c",
        "--concurrency",
        type=_COUNT,
        default=concurrency,
        metavar="N",
        help=f"requests in flight at once (default {concurrency})",
    )
    parser.add_argument(
        "--timeout",
        type=_SECONDS,
        default=30.0,
        metavar="S",
        help="seconds a whole fetch may take, retries included (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=_RETRIES,
        default=retries,
        metavar="N",
        help="retries on connection errors and 502/503/504"
        + (f" (default {retries})" if retries else " (default none)"),
    )
    parser.add_argument(
        "--proxy", metavar="URL", help="http://, https:// or socks5h:// proxy"
    )
    parser.add_argument(
        "--no-proxy-env",
        action="store_true",
        help="ignore HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY",
    )
    parser.add_argument("--cacert", metavar="FILE", help="trust this CA bundle (PEM)")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify certificates"
    )
    parser.add_argument(
        "--http2",
        action="store_true",
        help="offer HTTP/2 on https:// (ALPN; HTTP/1.1 if the server declines)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``trio-pool`` parser with its four commands."""
    parser = _Parser(
        prog="trio-pool",
        description="Fetch URLs concurrently, load-test a server, or run the "
        "bundled test server.",
    )
    parser.add_argument(
        "--version", action="version", version=f"trio-pool {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_get(commands.add_parser("get", help="fetch URLs, bodies to stdout or files"))
    _add_bench(commands.add_parser("bench", help="load-test a URL"))
    serve = commands.add_parser("serve", help="run the bundled test server")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument(
        "--port", type=_PORT, default=8000, help="default 8000; 0 picks a free one"
    )
    demo = commands.add_parser(
        "demo", help="fetch from and bench the bundled server (offline)"
    )
    demo.add_argument("-n", "--requests", type=_COUNT, default=2000, metavar="N")
    return parser


def _add_get(get: argparse.ArgumentParser) -> None:
    get.add_argument("urls", nargs="+", metavar="URL")
    get.add_argument(
        "-i",
        "--include",
        action="store_true",
        help="write the status line and headers before each body",
    )
    get.add_argument("-o", "--output-dir", metavar="DIR", help="save each body in DIR")
    _request_arguments(get)
    _client_arguments(get, retries=2, concurrency=10)


def _add_bench(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("url", metavar="URL")
    bench.add_argument(
        "-d",
        "--duration",
        type=_SECONDS,
        metavar="SECONDS",
        help=f"run this long (default {DEFAULT_BENCH_SECONDS:g} s "
        "when -n is not given either)",
    )
    bench.add_argument(
        "-n", "--requests", type=_COUNT, metavar="N", help="stop after N requests"
    )
    _request_arguments(bench)
    _client_arguments(bench, retries=None, concurrency=50)


def parse(argv: Sequence[str] | None) -> Options:
    """Parse ``argv`` (default ``sys.argv[1:]``).

    Raises:
        SystemExit: status 2 on a usage error (one line on stderr), 0 for
            ``--help`` and ``--version``.
        UsageError: the arguments parse but cannot be used (bad header, an
            unreadable ``--data @FILE``).
    """
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return ServeOptions(host=args.host, port=int(args.port))
    if args.command == "demo":
        return DemoOptions(requests=int(args.requests))
    client = ClientOptions(
        timeout=args.timeout,
        retries=int(args.retries or 0),
        proxy=args.proxy,
        proxy_env=not args.no_proxy_env,
        cacert=args.cacert,
        insecure=args.insecure,
        concurrency=int(args.concurrency),
        http2=args.http2,
    )
    request = _request(args)
    if args.command == "get":
        return GetOptions(
            urls=tuple(map(check_url, args.urls)),
            include=args.include,
            output_dir=args.output_dir,
            client=client,
            request=request,
        )
    duration = args.duration
    if duration is None and args.requests is None:
        duration = DEFAULT_BENCH_SECONDS
    requests = None if args.requests is None else int(args.requests)
    return BenchOptions(check_url(args.url), duration, requests, client, request)


def check_url(url: str) -> str:
    """``url`` itself, if trio_pool can fetch it.

    Raises:
        UsageError: it does not parse, has no host, or is not http(s).
    """
    try:
        parsed = parse_url(url)
    except LocationValueError as exc:
        raise UsageError(f"bad URL {url!r}: {exc}") from None
    if parsed.scheme not in (None, "http", "https"):
        raise UsageError(f"bad URL {url!r}: only http:// and https:// are supported")
    if not parsed.host:
        raise UsageError(f"bad URL {url!r}: no host")
    return url


def _request(args: argparse.Namespace) -> RequestSpec:
    headers = tuple(parse_header(line) for line in args.header)
    body: bytes | None = None
    if args.json is not None:
        body = args.json.encode()
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers += (("Content-Type", "application/json"),)
    elif args.data is not None:
        body = _data(args.data)
    method = args.method or ("GET" if body is None else "POST")
    return RequestSpec(method.upper(), headers, body)


def parse_header(line: str) -> tuple[str, str]:
    """``'Name: value'`` as ``("Name", "value")``.

    Raises:
        UsageError: there is no colon, or no name before it.
    """
    name, sep, value = line.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise UsageError(f"bad header {line!r}: use -H 'Name: value'")
    return name, value.strip()


def _data(text: str) -> bytes:
    if not text.startswith("@"):
        return text.encode()
    if text == "@-":
        return sys.stdin.buffer.read()
    try:
        with open(text[1:], "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"--data {text}: {exc.strerror or exc}") from None
