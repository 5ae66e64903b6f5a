"""Tests for trio_pool._environ: proxies from the environment.

The routing decision is pure (a proxies mapping and a target in, a proxy URL
or None out) and is tested here as a table. The manager is tested for what it
builds, without any I/O: ``connection_from_url`` makes pools but connects
nowhere. ``tests/integration/test_env_proxies.py`` sends real requests.
"""

from __future__ import annotations

import os
import ssl
import urllib.request

import pytest

import trio_pool
from trio_pool import (
    ClosedPoolError,
    EnvironmentProxyManager,
    HTTPConnectionPool,
    PoolManager,
    ProxyManager,
    ProxySchemeUnknown,
    Retry,
    SOCKSProxyManager,
    Timeout,
    parse_url,
    proxy_from_environment,
)
from trio_pool._environ import (
    bypasses_proxy,
    normalize_proxy_url,
    read_proxy_environment,
    select_proxy,
)

HTTP = "http://proxy.test:3128"
HTTPS = "http://tunnel.test:8080"
ALL = "socks5h://socks.test:1080"


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variables (nor CGI's REQUEST_METHOD) in ``os.environ``."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    return monkeypatch


# -- select_proxy: which proxy for which URL ------------------------------------

BOTH = {"http": HTTP, "https": HTTPS}
EVERY = {"http": HTTP, "https": HTTPS, "all": ALL}


@pytest.mark.parametrize(
    ("proxies", "scheme", "host", "port", "expected"),
    [
        # Nothing set: direct.
        ({}, "http", "a.example", None, None),
        ({"no": "a.example"}, "http", "a.example", None, None),
        # The scheme's own proxy.
        (BOTH, "http", "a.example", None, HTTP),
        (BOTH, "https", "a.example", None, HTTPS),
        (BOTH, "HTTP", "a.example", None, HTTP),
        ({"http": HTTP}, "https", "a.example", None, None),
        ({"https": HTTPS}, "http", "a.example", None, None),
        # ALL_PROXY when the scheme has none; the scheme's own wins.
        ({"all": ALL}, "http", "a.example", None, ALL),
        ({"all": ALL}, "https", "a.example", None, ALL),
        ({"http": HTTP, "all": ALL}, "https", "a.example", None, ALL),
        (EVERY, "http", "a.example", None, HTTP),
        (EVERY, "https", "a.example", None, HTTPS),
        # Other schemes' variables are not ours.
        ({"ftp": HTTP}, "http", "a.example", None, None),
        # Empty values count as unset.
        ({"http": "", "all": ALL}, "http", "a.example", None, ALL),
        ({"http": HTTP, "no": ""}, "http", "a.example", None, HTTP),
        # A proxy without a scheme is an http:// one; schemes are lowercased.
        ({"http": "proxy.test:3128"}, "http", "a.example", None, HTTP),
        ({"http": "HTTP://proxy.test:3128"}, "http", "a.example", None, HTTP),
        ({"all": "SOCKS5H://socks.test:1080"}, "http", "a.example", None, ALL),
        # Credentials are kept (the manager needs them).
        (
            {"http": "http://u:p@proxy.test:3128"},
            "http",
            "a.example",
            None,
            "http://u:p@proxy.test:3128",
        ),
        # NO_PROXY applies to every proxy, ALL_PROXY included.
        ({**EVERY, "no": "a.example"}, "http", "a.example", None, None),
        ({**EVERY, "no": "a.example"}, "https", "a.example", None, None),
        ({"all": ALL, "no": "a.example"}, "http", "a.example", None, None),
        ({**EVERY, "no": "a.example"}, "http", "b.example", None, HTTP),
    ],
)
def test_select_proxy(
    proxies: dict[str, str],
    scheme: str,
    host: str,
    port: int | None,
    expected: str | None,
) -> None:
    assert select_proxy(proxies, scheme, host, port) == expected


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "bypass"),
    [
        # Hosts, exactly and case-insensitively.
        ("a.example", "a.example", 80, True),
        ("A.Example", "a.EXAMPLE", 80, True),
        ("a.example", "b.example", 80, False),
        ("a.example", "aa.example", 80, False),
        # Domains: with or without a leading dot, the domain and below.
        ("example", "a.example", 80, True),
        (".example", "a.example", 80, True),
        (".example", "example", 80, True),
        ("example", "deep.a.example", 443, True),
        ("example", "notexample", 80, False),
        ("a.example", "example", 80, False),
        # Lists: commas, spaces, empty entries.
        ("one.test, a.example", "a.example", 80, True),
        (" , ,a.example,", "a.example", 80, True),
        ("one.test,two.test", "a.example", 80, False),
        # Ports: only that port (the scheme's default when the URL has none).
        ("a.example:8080", "a.example", 8080, True),
        ("a.example:8080", "a.example", 80, False),
        ("a.example:80", "a.example", 80, True),
        ("example:8080", "a.example", 8080, True),
        ("a.example", "a.example", 8080, True),
        # "*" on its own matches everything; inside a list it is just a name
        # (as in the standard library).
        ("*", "a.example", 80, True),
        ("*", "127.0.0.1", 80, True),
        ("a.test,*", "a.example", 80, False),
        # International names compare in their IDNA form, as URL hosts do.
        ("bücher.example", "xn--bcher-kva.example", 80, True),
        (".BÜCHER.example:8080", "shop.xn--bcher-kva.example", 8080, True),
        ("bücher.example:8080", "xn--bcher-kva.example", 80, False),
        ("xn--bcher-kva.example", "bücher.example", 80, True),
        ("bücher.example", "buecher.example", 80, False),
        ("bü cher", "a.example", 80, False),  # not a host at all: ignored
        # IP addresses.
        ("127.0.0.1", "127.0.0.1", 80, True),
        ("127.0.0.1", "127.0.0.2", 80, False),
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.1:8080", "127.0.0.1", 9090, False),
        # CIDR (our addition: the standard library has none).
        ("10.0.0.0/8", "10.1.2.3", 80, True),
        ("10.0.0.0/8", "11.1.2.3", 80, False),
        ("192.168.1.0/24", "192.168.1.255", 80, True),
        ("192.168.1.0/24", "192.168.2.1", 80, False),
        ("127.0.0.0/8", "127.200.0.1", 80, True),
        ("10.0.0.1/8", "10.9.9.9", 80, True),  # host bits are ignored
        ("10.0.0.0/8", "a.example", 80, False),
        ("10.0.0.0/8", "10.example", 80, False),
        ("not-an-ip/8", "10.0.0.1", 80, False),
        # IPv6: bracketed as in URLs, or bare (our addition), and networks.
        ("[::1]", "::1", 80, True),
        ("[::1]", "[::1]", 80, True),
        ("::1", "::1", 80, True),
        ("::1", "::2", 80, False),
        ("[::1]:8080", "::1", 8080, True),
        ("[::1]:8080", "::1", 9090, False),
        ("fd00::/8", "fd12:3456::1", 80, True),
        ("[fd00::]/8", "[fd12:3456::1]", 80, True),
        ("fd00::/8", "fe80::1", 80, False),
        ("::/0", "127.0.0.1", 80, False),  # a v6 network holds no v4 host
        ("0.0.0.0/0", "::1", 80, False),
        ("0.0.0.0/0", "203.0.113.7", 443, True),
    ],
)
def test_bypasses_proxy(no_proxy: str, host: str, port: int, bypass: bool) -> None:
    assert bypasses_proxy({"no": no_proxy}, host, port) is bypass


def test_bypass_agrees_with_the_standard_library_where_it_decides() -> None:
    """Where the standard library says "bypass", so do we (ours only adds)."""
    cases = [
        ("a.example,.b.example", "x.b.example:80"),
        ("example", "a.example:443"),
        ("*", "anything:80"),
        ("[::1]", "[::1]:80"),
        ("2.3", "10.1.2.3:80"),  # a quirk: IPs are matched as names too
    ]
    for no_proxy, netloc in cases:
        assert urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            netloc, {"no": no_proxy}
        )
        host, _, port = netloc.rpartition(":")
        assert bypasses_proxy({"no": no_proxy}, host, int(port))


def test_no_proxy_without_no_key_never_bypasses() -> None:
    assert not bypasses_proxy({"http": HTTP}, "a.example", 80)


@pytest.mark.parametrize(
    "url", ["ftp://proxy.test:21", "socks://proxy.test:1080", "http://", "://x"]
)
def test_unusable_proxy_urls(url: str) -> None:
    with pytest.raises(ProxySchemeUnknown):
        normalize_proxy_url(url)


@pytest.mark.parametrize("scheme", ["http", "https", "socks4", "socks4a", "socks5"])
def test_usable_proxy_schemes(scheme: str) -> None:
    assert normalize_proxy_url(f"{scheme}://p.test:1") == f"{scheme}://p.test:1"


# -- reading the environment ------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        ({"HTTP_PROXY": HTTP}, {"http": HTTP}),
        ({"http_proxy": HTTP}, {"http": HTTP}),
        ({"Https_Proxy": HTTPS}, {"https": HTTPS}),
        ({"ALL_PROXY": ALL, "NO_PROXY": "a.example"}, {"all": ALL, "no": "a.example"}),
        # Lowercase wins over uppercase...
        ({"HTTP_PROXY": HTTPS, "http_proxy": HTTP}, {"http": HTTP}),
        ({"NO_PROXY": "upper.test", "no_proxy": "lower.test"}, {"no": "lower.test"}),
        # ... even when empty, which unsets it; an empty uppercase one is unset.
        ({"HTTP_PROXY": HTTP, "http_proxy": ""}, {}),
        ({"HTTP_PROXY": "", "https_proxy": HTTPS}, {"https": HTTPS}),
        # Under CGI, HTTP_PROXY may come from a client's "Proxy:" header.
        ({"REQUEST_METHOD": "GET", "HTTP_PROXY": HTTP}, {}),
        ({"REQUEST_METHOD": "GET", "http_proxy": HTTP}, {"http": HTTP}),
    ],
)
def test_read_proxy_environment(
    clean_environ: pytest.MonkeyPatch,
    environ: dict[str, str],
    expected: dict[str, str],
) -> None:
    for name, value in environ.items():
        clean_environ.setenv(name, value)
    assert read_proxy_environment() == expected


def test_environment_is_read_once(clean_environ: pytest.MonkeyPatch) -> None:
    clean_environ.setenv("HTTP_PROXY", HTTP)
    clean_environ.setenv("NO_PROXY", "direct.test")
    manager = proxy_from_environment()
    clean_environ.setenv("HTTP_PROXY", "http://other.test:1")
    clean_environ.delenv("NO_PROXY")
    clean_environ.setenv("HTTPS_PROXY", HTTPS)
    assert manager.proxy_for("http://a.example/") == HTTP
    assert manager.proxy_for("http://direct.test/") is None
    assert manager.proxy_for("https://a.example/") is None
    # A new manager sees the new environment.
    assert proxy_from_environment().proxy_for("https://a.example/") == HTTPS


def test_proxies_argument_replaces_the_environment(
    clean_environ: pytest.MonkeyPatch,
) -> None:
    clean_environ.setenv("HTTP_PROXY", HTTP)
    manager = EnvironmentProxyManager(proxies={"https": HTTPS})
    assert manager.proxy_for("http://a.example/") is None
    assert manager.proxy_for("https://a.example/") == HTTPS


def test_proxy_for_leaves_credentials_out() -> None:
    manager = EnvironmentProxyManager(proxies={"http": "http://u:pw@proxy.test:3128"})
    assert manager.proxy_for("http://a.example/") == HTTP
    assert "pw" not in repr(manager)


def test_proxy_for_needs_a_host() -> None:
    with pytest.raises(trio_pool.LocationValueError):
        EnvironmentProxyManager(proxies={}).proxy_for("/relative")


# -- the manager: construction -----------------------------------------------------


def test_unknown_keyword_is_a_type_error_at_construction() -> None:
    with pytest.raises(TypeError, match="maxsze"):
        EnvironmentProxyManager(proxies={}, maxsze=4)
    with pytest.raises(TypeError):
        proxy_from_environment(proxies={"http": HTTP}, proxy_header={"X": "y"})


def test_unusable_proxy_in_the_environment_fails_at_construction() -> None:
    with pytest.raises(ProxySchemeUnknown):
        EnvironmentProxyManager(proxies={"all": "socks://gnome.test:1080"})
    # A variable for a scheme trio_pool does not speak is not looked at.
    EnvironmentProxyManager(proxies={"ftp": "ftp://proxy.test:21"})


def test_usual_pool_manager_options_are_accepted() -> None:
    manager = proxy_from_environment(
        proxies=EVERY,
        num_pools=3,
        headers={"User-Agent": "cli"},
        maxsize=4,
        block=True,
        retries=Retry(2),
        timeout=Timeout(connect=1, read=2),
        cert_reqs="CERT_REQUIRED",
        ca_certs=ssl.get_default_verify_paths().cafile or None,
        max_connections=8,
        proxy_headers={"X-Proxy": "1"},
    )
    assert manager.num_pools == 3
    assert manager.headers["User-Agent"] == "cli"
    assert manager.connection_pool_kw["maxsize"] == 4


# -- the manager: routing, without I/O --------------------------------------------


def route_of(http: EnvironmentProxyManager, pool: HTTPConnectionPool) -> str | None:
    """The proxy URL of the route (child manager) holding ``pool``."""
    (route,) = [
        url for url, child in http._routes.items() if pool in child.pools.values()
    ]
    return route


async def test_routes_pick_pools_of_the_right_kind() -> None:
    proxies = {**EVERY, "no": "direct.test,10.0.0.0/8"}
    async with EnvironmentProxyManager(proxies=proxies, maxsize=2) as http:
        # http:// through an HTTP proxy: the forwarding pool to the proxy.
        forwarded = http.connection_from_url("http://a.example/x")
        assert (forwarded.host, forwarded.port) == ("proxy.test", 3128)
        assert forwarded.maxsize == 2
        assert route_of(http, forwarded) == HTTP
        # https:// through an HTTP proxy: a tunnelling pool per target.
        tunnel = http.connection_from_url("https://a.example/")
        assert (tunnel.scheme, tunnel.host, tunnel.port) == ("https", "a.example", 443)
        assert route_of(http, tunnel) == HTTPS
        assert isinstance(http._routes[HTTPS], ProxyManager)
        # NO_PROXY: direct pools.
        for url in (
            "http://direct.test/",
            "https://x.direct.test/",
            "http://10.2.3.4/",
        ):
            direct = http.connection_from_url(url)
            assert route_of(http, direct) is None, url
            assert parse_url(url).host == direct.host
        assert type(http._routes[None]) is PoolManager
        assert http.statistics().pools == 5


async def test_socks_proxy_from_all_proxy() -> None:
    async with EnvironmentProxyManager(proxies={"all": ALL}) as http:
        assert isinstance(http._routes[ALL], SOCKSProxyManager)
        for url in ("http://a.example/", "https://a.example/"):
            pool = http.connection_from_url(url)
            assert route_of(http, pool) == ALL, url
            assert pool.host == "a.example"


async def test_same_pool_for_the_same_origin_and_clear_closes_all() -> None:
    async with EnvironmentProxyManager(proxies={"http": HTTP, "no": "d.test"}) as http:
        # Forwarded targets share the pool to the proxy.
        assert http.connection_from_url(
            "http://a.example/"
        ) is http.connection_from_url("http://b.example/")
        direct = http.connection_from_host("d.test", 80, "http")
        assert direct is http.connection_from_url("http://d.test/")
        key = trio_pool.PoolKey.make("http", "d.test", 80, http.connection_pool_kw)
        assert http.connection_from_pool_key(key) is direct
        assert http.statistics().pools == 2
        http.clear()
        assert http.statistics().pools == 0
        assert http.connection_from_url("http://d.test/") is not direct


async def test_closed_outside_its_block() -> None:
    manager = EnvironmentProxyManager(proxies={"http": HTTP})
    with pytest.raises(ClosedPoolError):
        manager.connection_from_url("http://a.example/")
    async with manager as http:
        http.connection_from_url("http://a.example/")
    with pytest.raises(ClosedPoolError):
        manager.connection_from_url("http://a.example/")
    assert manager.statistics().pools == 0
    with pytest.raises(trio_pool.LocationValueError):
        manager.connection_from_host(None)


async def test_unknown_target_scheme() -> None:
    async with EnvironmentProxyManager(proxies={"all": HTTP}) as http:
        with pytest.raises(trio_pool.URLSchemeUnknown):
            http.connection_from_url("ftp://a.example/")


async def test_routes_stay_right_past_the_remembered_origins() -> None:
    proxies = {"http": HTTP, "no": ".direct.test"}
    async with EnvironmentProxyManager(proxies=proxies, num_pools=2) as http:
        for round_ in range(2):  # the second round is answered from memory
            for i in range(1100):
                host = f"h{i}.direct.test" if i % 2 else f"h{i}.proxied.test"
                pool = http.connection_from_host(host, 80, "http")
                expected = host if i % 2 else "proxy.test"
                assert pool.host == expected, (round_, host)
