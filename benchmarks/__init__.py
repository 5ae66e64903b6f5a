"""Loopback benchmarks for trio_pool against its peers (run with ``nox -s bench``).

Layout:

* ``run.py`` — the runner: starts a server, runs every (scenario, client)
  measurement in its own subprocess, in interleaved rounds, and reports.
* ``servers.py`` — nginx (preferred) or the bundled trio server, on loopback.
* ``client.py`` — the subprocess entry point: one measurement, JSON out.
* ``drivers.py`` — the load loops (trio, asyncio, threads) and the meter that
  bounds and checks every request.
* ``clients/`` — one small module per client library.
* ``report.py`` — medians, ratios, targets, the markdown tables.
* ``profile_trio_pool.py`` — pyinstrument profiles of trio_pool's hot path.
"""
