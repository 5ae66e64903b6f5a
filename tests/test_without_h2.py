"""h2 is an optional extra: trio_pool imports and speaks HTTP/1.1 without it,
and asking for HTTP/2 says what to install."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = r"""
import builtins, importlib.util

real_import, real_find = builtins.__import__, importlib.util.find_spec

def no_h2(name, *args, **kwargs):
    if name == "h2" or name.startswith("h2."):
        raise ImportError("h2 is not installed here")
    return real_import(name, *args, **kwargs)

builtins.__import__ = no_h2
importlib.util.find_spec = lambda n, *a: None if n == "h2" else real_find(n, *a)

import trio, trio_pool
from trio_pool.testing import open_server

async def main():
    async with open_server() as server, trio_pool.PoolManager() as http:
        print((await http.request("GET", server.url + "/echo")).status)
    try:
        trio_pool.HTTPConnectionPool("localhost", http2=True)
    except ImportError as exc:
        print(exc)

trio.run(main)
"""


def test_http_1_1_works_and_http2_asks_for_h2() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "200",
        "http2=True needs the h2 package: pip install 'trio-pool[http2]'",
    ]
