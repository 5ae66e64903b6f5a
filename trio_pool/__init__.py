"""trio_pool: urllib3's connection pools, retries and timeouts, for trio.

Every public name lives in a private module and is re-exported here.
"""

from __future__ import annotations

import logging

from ._environ import EnvironmentProxyManager, proxy_from_environment
from ._exceptions import (
    BodyNotHttplibCompatible,
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    DependencyWarning,
    EmptyPoolError,
    FullPoolError,
    HeaderParsingError,
    HostChangedError,
    HTTPError,
    HTTPWarning,
    IncompleteRead,
    InsecureRequestWarning,
    InvalidChunkLength,
    InvalidHeader,
    LocationParseError,
    LocationValueError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    PoolError,
    ProtocolError,
    ProxyError,
    ProxySchemeUnknown,
    ProxySchemeUnsupported,
    ReadTimeoutError,
    RequestError,
    ResponseError,
    ResponseNotChunked,
    SecurityWarning,
    SSLError,
    StreamRefusedError,
    TimeoutError,
    UnrewindableBodyError,
    URLSchemeUnknown,
)
from ._fields import RequestField, encode_multipart_formdata
from ._headers import HTTPHeaderDict, make_headers
from ._https import HTTPSConnectionPool, connection_from_url
from ._pool import HTTPConnectionPool, PoolStatistics
from ._poolmanager import (
    ManagerStatistics,
    PoolKey,
    PoolManager,
    ProxyManager,
    SOCKSProxyManager,
    proxy_from_url,
    request,
)
from ._request import SKIP_HEADER
from ._response import HTTPResponse
from ._retry import RequestHistory, Retry
from ._timeout import DEFAULT_TIMEOUT, Timeout
from ._trace import TraceCallback, TraceEvent
from ._url import Url, parse_url
from ._version import __version__

__all__ = [
    "DEFAULT_TIMEOUT",
    "SKIP_HEADER",
    "BodyNotHttplibCompatible",
    "ClosedPoolError",
    "ConnectTimeoutError",
    "DecodeError",
    "DependencyWarning",
    "EmptyPoolError",
    "EnvironmentProxyManager",
    "FullPoolError",
    "HTTPConnectionPool",
    "HTTPError",
    "HTTPHeaderDict",
    "HTTPResponse",
    "HTTPSConnectionPool",
    "HTTPWarning",
    "HeaderParsingError",
    "HostChangedError",
    "IncompleteRead",
    "InsecureRequestWarning",
    "InvalidChunkLength",
    "InvalidHeader",
    "LocationParseError",
    "LocationValueError",
    "ManagerStatistics",
    "MaxRetryError",
    "NameResolutionError",
    "NewConnectionError",
    "PoolError",
    "PoolKey",
    "PoolManager",
    "PoolStatistics",
    "ProtocolError",
    "ProxyError",
    "ProxyManager",
    "ProxySchemeUnknown",
    "ProxySchemeUnsupported",
    "ReadTimeoutError",
    "RequestError",
    "RequestField",
    "RequestHistory",
    "ResponseError",
    "ResponseNotChunked",
    "Retry",
    "SOCKSProxyManager",
    "SSLError",
    "SecurityWarning",
    "StreamRefusedError",
    "Timeout",
    "TimeoutError",
    "TraceCallback",
    "TraceEvent",
    "URLSchemeUnknown",
    "UnrewindableBodyError",
    "Url",
    "__version__",
    "connection_from_url",
    "encode_multipart_formdata",
    "make_headers",
    "parse_url",
    "proxy_from_environment",
    "proxy_from_url",
    "request",
]

# Silent unless the application configures logging (as urllib3).
logging.getLogger("trio_pool").addHandler(logging.NullHandler())
