"""The PoolManager the commands use, built from :class:`ClientOptions`."""

from __future__ import annotations

import warnings
from typing import Any

import trio_pool

from ._options import ClientOptions, RequestSpec, UsageError

__all__ = ["open_manager", "request_headers", "retry_policy"]

#: Retries wait 0, 0.5, 1, 2, ... seconds (urllib3's doubling backoff).
BACKOFF_FACTOR = 0.5
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_REDIRECTS = 10


def retry_policy(retries: int) -> trio_pool.Retry:
    """Retry connection errors and 502/503/504 ``retries`` times.

    Redirects are counted apart (up to ten), so ``--retries 0`` still follows
    them. When the retries run out on an error status, the last response is
    returned rather than raised, so its status and body can be shown.
    """
    return trio_pool.Retry(
        total=None,
        connect=retries,
        read=retries,
        status=retries,
        other=retries,
        redirect=MAX_REDIRECTS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        raise_on_status=False,
    )


def open_manager(options: ClientOptions) -> trio_pool.PoolManager:
    """A manager for ``options``, to be entered with ``async with``.

    Raises:
        UsageError: the proxy URL cannot be used (a bad scheme, or SOCKS
            without the ``socksio`` package installed).
    """
    kw: dict[str, Any] = {
        "maxsize": options.concurrency,
        "block": True,
        "retries": retry_policy(options.retries),
        "timeout": trio_pool.Timeout(connect=options.timeout, read=options.timeout),
    }
    if options.http2:
        kw["http2"] = True
    if options.cacert:
        kw["ca_certs"] = options.cacert
    if options.insecure:
        kw["cert_reqs"] = "CERT_NONE"
        # The user asked for it; a warning per connection would only be noise.
        warnings.simplefilter("ignore", trio_pool.InsecureRequestWarning)
    try:
        return _manager(options, kw)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    except trio_pool.ProxySchemeUnknown as exc:
        scheme = getattr(exc, "scheme", None) or str(exc)
        raise UsageError(
            f"--proxy {options.proxy}: unsupported scheme {scheme!r} "
            "(use http://, https://, socks4://, socks4a://, socks5:// or socks5h://)"
        ) from None
    except trio_pool.LocationValueError as exc:
        raise UsageError(f"--proxy {options.proxy}: {exc}") from None


def _manager(options: ClientOptions, kw: dict[str, Any]) -> trio_pool.PoolManager:
    proxy = options.proxy
    if proxy:
        if proxy.lower().startswith("socks"):
            return trio_pool.SOCKSProxyManager(proxy, **kw)
        return trio_pool.ProxyManager(proxy, **kw)
    if options.proxy_env:
        return trio_pool.proxy_from_environment(**kw)
    return trio_pool.PoolManager(**kw)


def request_headers(spec: RequestSpec) -> trio_pool.HTTPHeaderDict | None:
    """The ``-H`` headers (repeated names kept), or None for none."""
    if not spec.headers:
        return None
    headers = trio_pool.HTTPHeaderDict()
    for name, value in spec.headers:
        headers.add(name, value)
    return headers
