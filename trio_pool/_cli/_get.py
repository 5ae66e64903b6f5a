"""``trio-pool get``: fetch URLs concurrently, write the bodies in order."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from typing import BinaryIO, TextIO

import trio

import trio_pool

from ._causes import describe
from ._client import open_manager, request_headers
from ._options import GetOptions, UsageError
from ._output import OrderedOutput, StatusLine, Stdout

__all__ = ["run_get"]

Write = Callable[[bytes], Awaitable[None]]
_PIECE = 2**16
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def head_bytes(response: trio_pool.HTTPResponse) -> bytes:
    """The status line and headers as received, then the empty line."""
    lines = [f"{response.version_string} {response.status} {response.reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def file_name(index: int, url: str) -> str:
    """``0000-name``: the URL's position and last path segment, made safe."""
    path = trio_pool.parse_url(url).path or ""
    last = _UNSAFE.sub("_", path.rstrip("/").rsplit("/", 1)[-1])
    return f"{index:04d}-{last if last.strip('.') else 'index'}"


class _Fetcher:
    """Runs every URL's fetch; counts failures and bytes for the status line."""

    def __init__(
        self, options: GetOptions, http: trio_pool.PoolManager, status: StatusLine
    ) -> None:
        self.options = options
        self.http = http
        self.status = status
        self.include = options.include or (
            len(options.urls) > 1 and options.output_dir is None
        )
        self.limiter = trio.CapacityLimiter(options.client.concurrency)
        self.failures = 0
        self.done = 0
        self.received = 0

    async def fetch(self, url: str, write: Write) -> bool:
        """Fetch ``url`` into ``write``; whether a whole body was written.

        A failure is reported on stderr and counted. An error status still
        writes its body, so it returns True.
        """
        seconds = self.options.client.timeout
        failure: str | None = None
        complete = False
        with trio.move_on_after(seconds) as scope:
            try:
                failure = await self._exchange(url, write)
                complete = True
            except trio_pool.HTTPError as exc:
                failure = describe(exc)
        if scope.cancelled_caught:
            failure = f"timed out after {seconds:g} s"
        self.done += 1
        if failure is not None:
            self.fail(url, failure)
        return complete

    def fail(self, url: str, cause: str) -> None:
        """Count a failed URL and say why on stderr."""
        self.failures += 1
        self.status.message(f"trio-pool: {url}: {cause}")

    async def _exchange(self, url: str, write: Write) -> str | None:
        spec = self.options.request
        response = await self.http.urlopen(
            spec.method,
            url,
            body=spec.body,
            headers=request_headers(spec),
            preload_content=False,
            decode_content=False,
        )
        async with response:
            if self.include:
                await write(head_bytes(response))
            async for piece in response.stream(_PIECE, decode_content=False):
                self.received += len(piece)
                await write(piece)
        if response.status >= 400:
            return f"HTTP {response.status} {response.reason}".rstrip()
        return None

    async def show_progress(self) -> None:
        """Redraw the status line a few times a second (terminal only)."""
        total = len(self.options.urls)
        while True:
            mib = self.received / 2**20
            self.status.show(f"trio-pool: {self.done}/{total} URLs, {mib:.1f} MiB")
            await trio.sleep(0.25)


async def _to_stdout(
    fetcher: _Fetcher, ordered: OrderedOutput, index: int, url: str
) -> None:
    async with fetcher.limiter:

        async def write(data: bytes) -> None:
            await ordered.write(index, data)

        await fetcher.fetch(url, write)
    await ordered.finish(index)


async def _fetch_to(fetcher: _Fetcher, url: str, path: str) -> tuple[bool, int]:
    async with await trio.open_file(path, "wb") as file:

        async def write(data: bytes) -> None:
            await file.write(data)

        complete = await fetcher.fetch(url, write)
        return complete, await file.tell()


async def _to_file(
    fetcher: _Fetcher, ordered: OrderedOutput, index: int, url: str
) -> None:
    directory = fetcher.options.output_dir
    assert directory is not None
    path = os.path.join(directory, file_name(index, url))
    async with fetcher.limiter:
        try:
            complete, size = await _fetch_to(fetcher, url, path)
        except OSError as exc:
            complete, size = False, 0
            fetcher.fail(url, f"cannot write {path}: {exc.strerror or exc}")
        if complete:
            line = f"{url} -> {path} ({size} bytes)\n"
            await ordered.write(index, line.encode())
        else:
            await trio.Path(path).unlink(missing_ok=True)
    await ordered.finish(index)


async def run_get(options: GetOptions, stdout: BinaryIO, stderr: TextIO) -> int:
    """Run ``trio-pool get``; the exit status (0, or 1 if a fetch failed).

    Raises:
        UsageError: ``-o DIR`` cannot be created, or the proxy is unusable.
    """
    if options.output_dir is not None:
        try:
            os.makedirs(options.output_dir, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"-o {options.output_dir}: {exc.strerror}") from None
    status = StatusLine(stderr, unless=stdout)
    with trio.CancelScope() as everything:
        out = Stdout(stdout, everything)
        ordered = OrderedOutput(out, len(options.urls))
        task = _to_stdout if options.output_dir is None else _to_file
        try:
            async with open_manager(options.client) as http:
                fetcher = _Fetcher(options, http, status)
                async with trio.open_nursery() as nursery:
                    if status.enabled:
                        nursery.start_soon(fetcher.show_progress)
                    async with trio.open_nursery() as fetches:
                        for index, url in enumerate(options.urls):
                            fetches.start_soon(task, fetcher, ordered, index, url)
                    nursery.cancel_scope.cancel()
        finally:
            ordered.close()
            status.clear()
    return 1 if fetcher.failures else 0
