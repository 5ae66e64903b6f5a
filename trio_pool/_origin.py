"""Origins: the (scheme, host, port) a URL points at, normalised once.

One :class:`Origin` is built per URL and then used everywhere a host is
compared or sent: pool keys, the ``Host`` header, ``is_same_host``, redirect
origin checks and proxy routing. The host is always in the normal form of
:func:`~trio_pool._url.normalize_host` (lowercase, IDNA 2008, IPv6 without
brackets), and the port is always a number (the scheme's default filled in),
so two origins are equal exactly when urllib3 would call them the same host.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._exceptions import LocationValueError, URLSchemeUnknown
from ._url import Url, normalize_host, parse_url

__all__ = ["DEFAULT_PORTS", "Origin"]

#: The schemes trio_pool speaks, and their default ports.
DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """A scheme, a normalised host and a port.

    Attributes:
        scheme: ``"http"`` or ``"https"``.
        host: the host in normal form (IPv6 literals without brackets).
        port: the port, the scheme's default when the URL names none.
    """

    scheme: str
    host: str
    port: int

    @classmethod
    def make(cls, scheme: str | None, host: str, port: int | None = None) -> Origin:
        """An origin from its parts; ``host`` is normalised here.

        Raises:
            URLSchemeUnknown: a scheme other than http or https.
            LocationValueError: no host.
            LocationParseError: an invalid host.
        """
        scheme = (scheme or "http").lower()
        default = DEFAULT_PORTS.get(scheme)
        if default is None:
            raise URLSchemeUnknown(scheme)
        if not host:
            raise LocationValueError("No host specified.")
        return cls(scheme, normalize_host(host), port or default)

    @classmethod
    def of_url(cls, url: Url | str) -> Origin:
        """The origin of an absolute URL (text or already parsed).

        Raises:
            LocationValueError: the URL has no host.
        """
        parsed = parse_url(url) if isinstance(url, str) else url
        if not parsed.host:
            raise LocationValueError(f"No host in URL: {str(url)!r}")
        return cls.make(parsed.scheme, parsed.host, parsed.port)

    @property
    def has_default_port(self) -> bool:
        """Whether the port is the scheme's default (and so left unsaid)."""
        return self.port == DEFAULT_PORTS[self.scheme]

    @property
    def authority(self) -> str:
        """``host:port`` as a ``Host`` header or CONNECT target writes it:
        IPv6 in brackets, the port left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.has_default_port else f"{host}:{self.port}"

    @property
    def tunnel_authority(self) -> str:
        """``host:port`` with the port always present (CONNECT targets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}"
