"""The trio-pool command: get, bench, demo."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from trio_pool.__main__ import _bench, _get, _parser, main
from trio_pool.testing import Server, pattern


async def run_get(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = await _get(_parser().parse_args(["get", *argv]), out)
    return code, out.getvalue()


async def test_get_prints_bodies(server: Server) -> None:
    code, out = await run_get(
        [server.url + "/headers?X-A=1", server.url + "/headers?X-B=2"]
    )
    assert (code, out) == (0, "okok")


async def test_get_to_output_dir_with_headers_and_json(
    server: Server, tmp_path: Path
) -> None:
    urls = [f"{server.url}/bytes/{n}" for n in (10, 20000)]
    code, out = await run_get(
        [*urls, "-o", str(tmp_path), "-c", "2", "-H", "X-Test: yes"]
    )
    assert code == 0
    assert (tmp_path / "0000-10").read_bytes() == pattern(10)
    assert (tmp_path / "0001-20000").read_bytes() == pattern(20000)
    assert "200 20000 bytes" in out
    assert all(r.header("X-Test") == "yes" for r in server.requests)
    code, out = await run_get([server.url + "/echo", "--json", '{"a": 1}'])
    assert code == 0
    assert '"method":"POST"' in out.replace(" ", "")
    assert server.requests[-1].body == b'{"a": 1}'


async def test_get_failures_exit_nonzero(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run_get([server.url + "/status/404", "--retries", "0"])
    assert code == 1
    code, _ = await run_get([server.url + "/fault/reset", "--retries", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err
    assert "ProtocolError" in err
    with pytest.raises(SystemExit):
        await run_get([server.url, "-H", "no colon"])


async def test_bench_reports(server: Server) -> None:
    out = io.StringIO()
    args = _parser().parse_args(
        ["bench", server.url + "/bytes/100", "-c", "5", "-n", "200"]
    )
    assert await _bench(args.url, args, out) == 0
    report = out.getvalue()
    assert "200 ok, 0 errors, 5 tasks" in report
    assert "latency ms: p50" in report


def test_demo_runs_offline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_pool", "demo", "-n", "300"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "300 ok, 0 errors" in done.stdout
    assert "-> 200, 100000 bytes" in done.stdout


def test_main_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "trio-pool" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([])
