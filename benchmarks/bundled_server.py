"""``python -m benchmarks.bundled_server CERT_PEM``: the fallback server.

Serves ``trio_pool.testing.open_server`` over HTTP and HTTPS on 127.0.0.1,
prints ``{"http": port, "https": port}`` on one line, and runs until killed.
"""

from __future__ import annotations

import json
import ssl
import sys

import trio

from trio_pool.testing import open_server


async def serve(cert_file: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file)
    async with (
        open_server("127.0.0.1") as plain,
        open_server("127.0.0.1", ssl_context=context) as tls,
    ):
        print(json.dumps({"http": plain.port, "https": tls.port}), flush=True)
        while True:
            # The server keeps every request for tests' assertions; a benchmark
            # sends millions, so drop them as they come.
            await trio.sleep(1)
            plain.requests.clear()
            tls.requests.clear()


if __name__ == "__main__":
    trio.run(serve, sys.argv[1])
