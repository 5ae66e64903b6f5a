"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s typecheck`."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite with branch coverage (posargs go to pytest).

    With ``TRIO_POOL_STRICT=1`` in the environment (``.ci/run`` sets it), a
    skipped test fails the run. The 90% coverage bar applies to the whole
    suite only: ``nox -s tests -- tests/unit`` reports coverage without it.
    """
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    bar = [] if session.posargs else ["--fail-under=90"]
    session.run("coverage", "report", *bar)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the tests."""
    session.install("-e", ".[test]", "mypy", "nox")
    session.run("mypy", "--strict", "trio_pool", "tests", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Loopback benchmarks against nginx (or the bundled server).

    ``nox -s bench`` is the full run (6-8 min, then ~2 min of HTTP/2 in
    ``python -m benchmarks.h2``), ``nox -s bench -- --quick`` a short smoke
    run of both, ``nox -s bench -- --profile`` profiles trio_pool (HTTP/1.1,
    then HTTP/2). Other arguments go to ``python -m benchmarks.run``.
    """
    session.install(
        "-e", ".", "httpx", "httpcore", "aiohttp", "urllib3", "anyio", "trustme", "h2"
    )
    args = list(session.posargs)
    if "--profile" in args:
        args.remove("--profile")
        session.install("pyinstrument")
        session.run("python", "-m", "benchmarks.profile_trio_pool", *args)
        session.run("python", "-m", "benchmarks.h2", "--profile")
        return
    session.run("python", "-m", "benchmarks.run", *args)
    session.run("python", "-m", "benchmarks.h2", *[a for a in args if a == "--quick"])


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation (warnings are errors) into docs/_build.

    The code examples in the docs are run by ``tests/test_docs.py`` (part of
    ``nox -s tests``), not here.
    """
    session.install("-e", ".[docs,http2]")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
        *session.posargs,
    )


@nox.session
def soak(session: nox.Session) -> None:
    """The soak tests at scale: 50,000 requests from 500 concurrent tasks.

    ``TRIO_POOL_SOAK_REQUESTS`` and ``TRIO_POOL_SOAK_TASKS`` in the environment
    override those sizes; posargs go to pytest. Takes a few minutes.
    """
    import os

    session.install("-e", ".[test]")
    env = {
        name: os.environ.get(name) or default
        for name, default in (
            ("TRIO_POOL_SOAK_REQUESTS", "50000"),
            ("TRIO_POOL_SOAK_TASKS", "500"),
        )
    }
    session.run(
        "pytest", "tests/integration/test_soak.py", "-v", *session.posargs, env=env
    )
