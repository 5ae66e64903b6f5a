"""HTTP/2 through proxies: ALPN runs on the TLS inside a tunnel; forwarding
through an HTTP proxy stays HTTP/1.1."""

from __future__ import annotations

import trio

from tests.integration import proxies
from tests.integration.proxies import Socks, Squid, TargetCA
from trio_pool import ProxyManager, SOCKSProxyManager
from trio_pool.testing import open_h2_server, open_server

target_ca = proxies.target_ca
squid = proxies.squid
dante = proxies.dante


async def test_h2_inside_a_connect_tunnel(squid: Squid, target_ca: TargetCA) -> None:
    context = target_ca.server_context()
    with trio.fail_after(15):
        async with (
            open_h2_server(ssl_context=context) as target,
            ProxyManager(squid.url, ca_certs=str(target_ca.pem), http2=True) as http,
        ):
            url = f"https://{target.host}:{target.port}/echo"
            for _ in range(3):
                response = await http.request("GET", url)
                assert (response.status, response.version) == (200, 20)
            pool = http.connection_from_url(url)
            assert pool.statistics().h2_connections == 1
            assert pool.statistics().created == 1
    line = await squid.wait_for(lambda e: e.url == f"{target.host}:{target.port}")
    assert line.method == "CONNECT"


async def test_h2_through_socks(dante: Socks, target_ca: TargetCA) -> None:
    context = target_ca.server_context()
    with trio.fail_after(15):
        async with (
            open_h2_server(ssl_context=context) as target,
            SOCKSProxyManager(
                dante.url("socks5h"), ca_certs=str(target_ca.pem), http2=True
            ) as http,
        ):
            response = await http.request(
                "GET", f"https://localhost:{target.port}/echo"
            )
            assert response.version == 20
    assert dante.connected_to(target.port)


async def test_forwarding_through_an_http_proxy_stays_http_1_1(squid: Squid) -> None:
    with trio.fail_after(15):
        async with open_server() as target, ProxyManager(squid.url, http2=True) as http:
            response = await http.request("GET", f"{target.url}/echo")
            assert (response.status, response.version) == (200, 11)
