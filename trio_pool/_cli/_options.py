"""The parsed command line, as frozen values the commands can rely on."""

from __future__ import annotations

from dataclasses import dataclass


class UsageError(Exception):
    """The command line asks for something impossible (exit status 2)."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How to build the PoolManager: timeouts, retries, TLS and proxies."""

    timeout: float
    retries: int
    proxy: str | None
    proxy_env: bool
    cacert: str | None
    insecure: bool
    concurrency: int
    http2: bool = False


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to send to every URL: method, headers and body."""

    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class GetOptions:
    """``trio-pool get``."""

    urls: tuple[str, ...]
    include: bool
    output_dir: str | None
    client: ClientOptions
    request: RequestSpec


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """``trio-pool bench``: stop after ``duration`` seconds or ``requests``."""

    url: str
    duration: float | None
    requests: int | None
    client: ClientOptions
    request: RequestSpec


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """``trio-pool serve``."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """``trio-pool demo``."""

    requests: int
