"""Client CPU per HTTP/2 request, A/B and where it goes:
``python -m benchmarks.h2_cpu ab|floor|counts``.

Theory of operation
-------------------
The main HTTP/2 benchmark (:mod:`benchmarks.h2`) measures wall time and CPU
over a one-second run; on this shared two-core machine one run's CPU per
request moves by 10-20 %. This tool is for deciding whether one change to
``trio_pool/_http2.py`` helps:

* ``ab``: several versions of ``_http2.py`` (``--impl NAME=PATH``; a copy of
  the file as it was, say, beside the working one) and the benchmark's other
  clients (``--clients``) are measured in turn, interleaved over
  ``--rounds`` rounds, each run a fresh process with the same load (100
  tasks, one connection, 1 KiB GET from nginx); the table gives the median
  and spread of client CPU (user + system) per request. A version is loaded
  in place of ``trio_pool._http2`` before the pool imports it, so the rest
  of the package is the same for all.
* ``counts``: per request, how many trio task steps (by task), socket sends
  and receives (and their sizes), h2 ``receive_data`` calls and writer
  wake-ups: what a change is meant to cut.
* ``floor``: the CPU spent inside h2 (with hpack and hyperframe, which only
  h2 calls) per request, timed around every public ``H2Connection`` method
  (outermost call only, ``time.thread_time_ns``, the timer's own cost
  measured and subtracted), and inside ``ssl.SSLObject`` (TLS records),
  beside the process's system time (the kernel: socket calls and epoll) and
  the rest (trio, the client's own code, the event objects). Any client
  built on h2 pays the first part per request, so it bounds what a ratio
  against another h2 client can be.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import h2 as bench

REPO = bench.REPO
CLIENTS = {"tp": "trio_pool_h2", "bare": "bare_h2", "httpx": "httpx_h2"}


# -- the measuring process -------------------------------------------------------


def _load_impl(path: str) -> None:
    """Put the file at ``path`` in place of ``trio_pool._http2``."""
    import trio_pool

    spec = importlib.util.spec_from_file_location("trio_pool._http2", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trio_pool._http2"] = module
    spec.loader.exec_module(module)
    trio_pool._http2 = module  # type: ignore[attr-defined]


#: Changes to trio_pool's pool measured without editing it (the file has
#: another owner): NAME -> (method of HTTPConnectionPool, old text, new text).
POOL_PATCHES = {
    "no_acquire_yield": (
        "_acquire_multiplexed",
        "await trio.lowlevel.checkpoint()",
        "await trio.lowlevel.checkpoint_if_cancelled()",
    ),
}


def _patch_pool(name: str) -> None:
    """Recompile one pool method with a text replaced, in its own module."""
    import inspect
    import textwrap

    import trio_pool._pool as module

    method, old, new = POOL_PATCHES[name]
    source = textwrap.dedent(
        inspect.getsource(getattr(module.HTTPConnectionPool, method))
    )
    assert old in source, f"{name}: the pool's code changed"
    namespace: dict[str, Any] = {}
    code = compile(source.replace(old, new), module.__file__ or "", "exec")
    exec(code, vars(module), namespace)
    setattr(module.HTTPConnectionPool, method, namespace[method])


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def _load(opts: dict[str, Any], probes: Any) -> dict[str, Any]:
    """``tasks`` tasks fetching for ``seconds`` after a warm-up; CPU and count."""
    import trio

    job = bench._job(
        bench.Server("nginx", opts["host"], opts["port"], opts["ca"]),
        bench.Plan(1, opts["seconds"], 2.0, 0),
        bench.Row("x", "x", "x", opts["client"], opts["tasks"]),
    )
    openers = {"httpx_h2": bench._httpx, "bare_h2": bench._bare_h2}
    opener = openers.get(job.client, bench._trio_pool)
    done = 0
    phase = "warm"
    result: dict[str, Any] = {}

    async with opener(job) as workers:

        async def worker(until: float) -> None:
            nonlocal done
            async with workers() as fetch:
                while trio.current_time() < until:
                    status, length = await fetch(bench.SMALL, False)
                    assert status == 200 and length == 1024, (status, length)
                    if phase == "timed":
                        done += 1

        async with trio.open_nursery() as nursery:
            for _ in range(opts["tasks"]):
                nursery.start_soon(worker, trio.current_time() + 0.5)
        phase = "timed"
        if probes is not None:
            probes.start()
        u0, s0 = _cpu()
        w0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(opts["tasks"]):
                nursery.start_soon(worker, trio.current_time() + opts["seconds"])
        u1, s1 = _cpu()
        if probes is not None:
            probes.stop()
        result.update(
            done=done, wall=time.perf_counter() - w0, user=u1 - u0, sys=s1 - s0
        )
        phase = "after"
    return result


def measure_main(opts: dict[str, Any]) -> None:
    import trio

    if opts.get("impl"):
        _load_impl(opts["impl"])
    for name in opts.get("patches", []):
        _patch_pool(name)
    mode = opts.get("mode", "cpu")
    probes: Any = None
    if mode == "counts":
        probes = _Counts()
    elif mode == "floor":
        probes = _Floor()
    elif mode == "replay":
        probes = _Record()
    instruments = [probes] if isinstance(probes, _Counts) else []
    result = trio.run(_load, opts, probes, instruments=instruments)
    if probes is not None:
        result.update(probes.report(result["done"]))
    print("result " + json.dumps(result), flush=True)


# -- counts ----------------------------------------------------------------------------


class _Counts:
    """A trio instrument and wrappers that count per request what a change
    may cut: task steps, socket sends and receives, h2 calls."""

    def __init__(self) -> None:
        self.on = False
        self.steps: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.sizes: Counter[str] = Counter()
        self._wrap_methods()

    def start(self) -> None:
        self.on = True

    def stop(self) -> None:
        self.on = False

    def before_task_step(self, task: Any) -> None:
        if self.on:
            self.steps[task.name.rsplit(".", 1)[-1]] += 1

    def before_io_wait(self, timeout: float) -> None:
        if self.on:
            self.calls["run loop pass"] += 1

    def _count(self, cls: Any, name: str, size_of: Callable[[Any, Any], int]) -> None:
        original = getattr(cls, name)
        key = f"{cls.__name__}.{name}"
        counts = self

        async def wrapped(obj: Any, *args: Any, **kwargs: Any) -> Any:
            result = await original(obj, *args, **kwargs)
            if counts.on:
                counts.calls[key] += 1
                counts.sizes[key] += size_of(args, result)
            return result

        setattr(cls, name, wrapped)

    def _wrap_methods(self) -> None:
        import h2.connection
        import trio

        self._count(trio.SocketStream, "send_all", lambda a, r: len(a[0]))
        self._count(trio.SocketStream, "receive_some", lambda a, r: len(r))
        original = h2.connection.H2Connection.receive_data
        counts = self

        def receive_data(obj: Any, data: bytes) -> Any:
            events = original(obj, data)
            if counts.on:
                counts.calls["h2.receive_data"] += 1
                counts.sizes["h2.receive_data"] += len(events)
            return events

        h2.connection.H2Connection.receive_data = receive_data  # type: ignore[method-assign]

    def report(self, done: int) -> dict[str, Any]:
        per = {k: v / done for k, v in self.calls.items()}
        avg = {k: self.sizes[k] / v for k, v in self.calls.items() if v}
        steps = {k: v / done for k, v in self.steps.most_common(8)}
        return {
            "steps_per_req": sum(self.steps.values()) / done,
            "steps": steps,
            "calls_per_req": per,
            "avg_size": avg,
        }


# -- floor ----------------------------------------------------------------------


class _Floor:
    """Thread CPU time inside h2 and inside ssl.SSLObject, outermost calls
    only, less the timer's own measured cost."""

    def __init__(self) -> None:
        import ssl

        import h2.connection

        self.on = False
        self.ns: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._depth = 0
        cls = h2.connection.H2Connection
        for name in dir(cls):
            if name.startswith("_"):
                continue
            attr = cls.__dict__.get(name)
            if callable(attr):
                setattr(cls, name, self._timed(attr, "h2"))
            elif isinstance(attr, property) and attr.fget is not None:
                setattr(cls, name, property(self._timed(attr.fget, "h2"), attr.fset))
        for name in ("read", "write", "pending", "do_handshake", "unwrap"):
            setattr(
                ssl.SSLObject, name, self._timed(getattr(ssl.SSLObject, name), "ssl")
            )
        self.overhead_ns = self._calibrate()

    def start(self) -> None:
        self.on = True

    def stop(self) -> None:
        self.on = False

    def _timed(self, fn: Callable[..., Any], group: str) -> Callable[..., Any]:
        clock = time.thread_time_ns
        floor = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if floor._depth or not floor.on:
                return fn(*args, **kwargs)
            floor._depth = 1
            began = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                floor.ns[group] += clock() - began
                floor.calls[group] += 1
                floor._depth = 0

        return timed

    def _calibrate(self) -> float:
        """The cost the timer adds to (and counts inside) one outermost call."""
        timed = self._timed(lambda: None, "calibration")
        self.on = True
        n = 20_000
        began = time.thread_time_ns()
        for _ in range(n):
            timed()
        spent = time.thread_time_ns() - began
        inside = self.ns.pop("calibration")
        self.calls.pop("calibration")
        self.on = False
        # What shows inside the window, and what the wrapper costs in all.
        self.inside_ns = inside / n
        return spent / n

    def report(self, done: int) -> dict[str, Any]:
        out: dict[str, Any] = {"timer_ns_per_call": self.overhead_ns}
        for group in ("h2", "ssl"):
            calls = self.calls[group]
            net = self.ns[group] - calls * self.inside_ns
            out[f"{group}_us_per_req"] = net / done / 1000
            out[f"{group}_calls_per_req"] = calls / done
        total_overhead = sum(self.calls.values()) * self.overhead_ns
        out["timer_us_per_req"] = total_overhead / done / 1000
        return out


# -- replay ---------------------------------------------------------------------


class _Record:
    """Every call the client makes on its ``H2Connection``, recorded, then
    replayed on a fresh connection built the same way: h2's own CPU time
    for the timed phase, with no client, no trio, no TLS and no timer
    around each call. The replay runs the calls back to back in one
    process, with warm caches: if anything, a lower bound."""

    def __init__(self) -> None:
        import h2.connection

        self.ops: list[tuple[int, str, tuple[Any, ...], dict[str, Any]]] = []
        self.conns: dict[int, list[Any]] = {}
        self.marks: list[int] = []
        self._depth = 0
        cls = h2.connection.H2Connection
        original_init = cls.__init__
        record = self

        def __init__(obj: Any, config: Any = None) -> None:
            original_init(obj, config=config)
            record.conns[id(obj)] = [type(obj), copy.copy(obj.config), None]

        cls.__init__ = __init__  # type: ignore[method-assign]
        for name in dir(cls):
            attr = cls.__dict__.get(name)
            if name.startswith("_") or attr is None:
                continue
            if callable(attr):
                setattr(cls, name, self._recorded(attr, name))
            elif isinstance(attr, property) and attr.fget is not None:
                getter = self._recorded(attr.fget, "property:" + name)
                setattr(cls, name, property(getter, attr.fset))

    def start(self) -> None:
        self.marks.append(len(self.ops))

    def stop(self) -> None:
        self.marks.append(len(self.ops))

    def _recorded(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        record = self

        def recorded(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if record._depth:
                return fn(obj, *args, **kwargs)
            entry = record.conns.get(id(obj))
            if entry is not None and entry[2] is None:
                entry[2] = dict(obj.local_settings)
            args = tuple(bytes(a) if isinstance(a, bytearray) else a for a in args)
            record.ops.append((id(obj), name, args, kwargs))
            record._depth = 1
            try:
                return fn(obj, *args, **kwargs)
            finally:
                record._depth = 0

        return recorded

    def _replay_once(
        self,
        key: int,
        ops: list[Any],
        hpack_clock: Counter[str] | None,
        stock: bool = False,
    ) -> tuple[float, int]:
        import h2.connection
        import h2.exceptions
        import h2.settings

        cls, config, settings = self.conns[key]
        if stock:  # h2's own class (trio_pool's adds a decoder that remembers)
            cls = h2.connection.H2Connection
        conn = cls(config=copy.copy(config))
        conn.local_settings = h2.settings.Settings(
            client=config.client_side, initial_values=settings
        )
        if hpack_clock is not None:
            _clock_hpack(conn, hpack_clock)
        begin, end = self.marks[0], self.marks[1]
        errors = 0
        clock = time.process_time
        began = 0.0
        for i, (_, name, args, kwargs) in enumerate(ops):
            if i == begin:
                began = clock()
            elif i == end:
                break
            try:
                if name.startswith("property:"):
                    getattr(conn, name.removeprefix("property:"))
                else:
                    getattr(conn, name)(*args, **kwargs)
            except h2.exceptions.ProtocolError:
                errors += 1
        return clock() - began, errors

    def report(self, done: int) -> dict[str, Any]:
        # The connection the requests went over: the one with the most calls.
        key = Counter(op[0] for op in self.ops).most_common(1)[0][0]
        ops = self.ops
        if key not in self.conns:
            return {"replay_error": "the connection was made before recording"}
        # Alternated, many times: the machine is shared, and the least time
        # is the one least disturbed by it.
        runs, stock = [], []
        for _ in range(9):
            runs.append(self._replay_once(key, ops, None))
            stock.append(self._replay_once(key, ops, None, stock=True))
        hpack: Counter[str] = Counter()
        self._replay_once(key, ops, hpack)
        stock_hpack: Counter[str] = Counter()
        self._replay_once(key, ops, stock_hpack, stock=True)
        cls = self.conns[key][0]
        names = Counter(
            op[1] for op in ops[self.marks[0] : self.marks[1]] if op[0] == key
        )
        return {
            "replay_h2_us_per_req": statistics.median(r[0] for r in runs) / done * 1e6,
            "replay_h2_us_per_req_min": min(r[0] for r in runs) / done * 1e6,
            "replay_stock_h2_us_per_req_min": min(r[0] for r in stock) / done * 1e6,
            "replay_errors": runs[0][1],
            "replay_hpack_us_per_req": {k: v / done * 1e6 for k, v in hpack.items()},
            "replay_stock_h2_us_per_req": statistics.median(r[0] for r in stock)
            / done
            * 1e6,
            "replay_stock_hpack_us_per_req": {
                k: v / done * 1e6 for k, v in stock_hpack.items()
            },
            "replay_calls_per_req": {k: v / done for k, v in names.most_common()},
            "h2_class": f"{cls.__module__}.{cls.__name__}",
        }


def _clock_hpack(conn: Any, clock: Counter[str]) -> None:
    """Time (per_counter) the connection's HPACK decoder and encoder."""
    for attr, method in (("decoder", "decode"), ("encoder", "encode")):
        obj = getattr(conn, attr)
        fn = getattr(obj, method)

        def timed(*args: Any, _fn: Any = fn, _key: str = attr, **kw: Any) -> Any:
            began = time.perf_counter()
            try:
                return _fn(*args, **kw)
            finally:
                clock[_key] += time.perf_counter() - began

        setattr(obj, method, timed)


# -- the runner -----------------------------------------------------------------


def _run(server: bench.Server, opts: dict[str, Any]) -> dict[str, Any]:
    opts = {"host": server.host, "port": server.port, "ca": server.ca_file, **opts}
    cmd = [sys.executable, "-m", "benchmarks.h2_cpu", "--measure", json.dumps(opts)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    for line in done.stdout.splitlines():
        if line.startswith("result "):
            result: dict[str, Any] = json.loads(line.removeprefix("result "))
            return result
    raise RuntimeError(done.stderr.strip()[-2000:] or "no result")


def _variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for item in args.impl or []:
        name, _, path = item.partition("=")
        out.append((name, {"client": "trio_pool_h2", "impl": path}))
    if not args.impl:
        out.append(("tp", {"client": "trio_pool_h2"}))
    for name in args.patch or []:
        out.append((name, {"client": "trio_pool_h2", "patches": [name]}))
    out += [(c, {"client": CLIENTS[c]}) for c in args.clients]
    return out


def ab(args: argparse.Namespace) -> None:
    variants = _variants(args)
    cpu: dict[str, list[float]] = {name: [] for name, _ in variants}
    rate: dict[str, list[float]] = {name: [] for name, _ in variants}
    with bench.open_h2_server() as server:
        for n in range(args.rounds):
            shift = n % len(variants)
            for name, opts in variants[shift:] + variants[:shift]:
                opts = {**opts, "tasks": args.tasks, "seconds": args.seconds}
                r = _run(server, opts)
                us = (r["user"] + r["sys"]) / r["done"] * 1e6
                cpu[name].append(us)
                rate[name].append(r["done"] / r["wall"])
                print(
                    f"[{n + 1}] {name:10} {us:6.1f} us CPU/req"
                    f" {r['done'] / r['wall']:8,.0f} req/s",
                    flush=True,
                )
    first = variants[0][0]
    print(
        "\n| variant | CPU us/req (median) | min - max | paired vs "
        + first
        + " | req/s |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, _ in variants:
        c = cpu[name]
        paired = statistics.median(a / b for a, b in zip(c, cpu[first], strict=True))
        print(
            f"| {name} | {statistics.median(c):.1f} | {min(c):.1f} - {max(c):.1f}"
            f" | {paired:.3f} | {statistics.median(rate[name]):,.0f} |"
        )


def inspect(args: argparse.Namespace, mode: str) -> None:
    with bench.open_h2_server() as server:
        for name, opts in _variants(args):
            runs = []
            for _ in range(args.rounds):
                opts = {
                    **opts,
                    "tasks": args.tasks,
                    "seconds": args.seconds,
                    "mode": mode,
                }
                runs.append(_run(server, opts))
            print(f"## {name} ({mode}, {args.rounds} run(s))")
            for r in runs:
                r["cpu_us_per_req"] = (r["user"] + r["sys"]) / r["done"] * 1e6
                r["sys_us_per_req"] = r["sys"] / r["done"] * 1e6
                print(json.dumps(r, indent=1, sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.h2_cpu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "what", nargs="?", choices=["ab", "counts", "floor", "replay"], default="ab"
    )
    p.add_argument("--impl", action="append", help="NAME=PATH of an _http2.py")
    p.add_argument("--patch", action="append", choices=list(POOL_PATCHES))
    p.add_argument("--clients", nargs="*", default=[], choices=list(CLIENTS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--tasks", type=int, default=100)
    p.add_argument("--measure", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        measure_main(json.loads(args.measure))
    elif args.what == "ab":
        ab(args)
    else:
        inspect(args, args.what)


if __name__ == "__main__":
    main()
