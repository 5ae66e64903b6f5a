"""Run every Python example in ``docs/*.md`` against the bundled test server.

How a fenced ``python`` block is treated depends on what it is:

* A **program** — a block that calls ``trio.run(`` — runs as
  ``python -W error -c CODE`` in a fresh process, exactly as a reader would
  run it, with no names given: it starts its own server if it needs one
  (``trio_pool.testing.open_server()``).
* Any other block is a **snippet**: it runs inside a trio task (top-level
  ``await`` allowed) with these names defined, as "How the examples are
  written" in ``docs/index.md`` explains: ``http``, an open ``PoolManager``;
  ``BASE_URL``, ``HOST`` and ``PORT`` of a fresh ``trio_pool.testing``
  server; ``trio`` and ``trio_pool``. A snippet that mentions ``TLS_`` or
  ``CA_`` names also gets an HTTPS test server — ``TLS_BASE_URL``,
  ``TLS_HOST``, ``TLS_PORT`` — whose certificate (for ``127.0.0.1`` and
  ``localhost``) is issued by a trustme CA, given as ``CA_CERTS`` (a PEM
  file's path) and ``CA_PEM`` (the PEM text).
* A block right after ``<!-- docs: norun (reason) -->`` is only compiled;
  keep these rare (code for another library, say).
* A block right after ``<!-- docs: same-as PATH -->`` must be the text of
  the file at ``PATH`` (relative to the repository), which runs elsewhere.

Blocks in other languages (``sh``, ``text``, ...) are not touched. Each
snippet gets fresh servers and a fresh manager; blocks share nothing.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_pool
from trio_pool.testing import open_server

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PYTHON_FENCES = frozenset({"python", "py", "python3"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*docs:\s*(?P<what>norun|same-as)\b\s*(?P<arg>.*?)\s*-->$")
#: Seconds a snippet or a program may take.
LIMIT = 30
#: Pages whose examples do not follow the rules above yet, and why. Temporary:
#: an entry here means an unchecked page.
PENDING: dict[str, str] = {}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page."""

    page: str
    line: int
    info: str
    code: str
    marker: str | None = None
    marker_arg: str = ""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def iter_blocks(text: str, page: str) -> Iterator[Block]:
    """The fenced code blocks of a markdown page, with their markers."""
    lines = text.splitlines()
    previous = ""
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        fence = match["fence"]
        start = i
        body: list[str] = []
        i += 1
        # A closing fence: the same character, at least as many times.
        while i < len(lines) and not (
            set(lines[i].strip()) == {fence[0]} and len(lines[i].strip()) >= len(fence)
        ):
            body.append(lines[i])
            i += 1
        i += 1
        marker = _MARKER.match(previous)
        yield Block(
            page=page,
            line=start + 1,
            info=match["info"].strip(),
            code="\n".join(body) + "\n",
            marker=marker["what"] if marker else None,
            marker_arg=marker["arg"] if marker else "",
        )
        previous = ""


def python_blocks() -> list[Block]:
    found: list[Block] = []
    for path in sorted(DOCS.glob("*.md")):
        for block in iter_blocks(path.read_text("utf-8"), path.name):
            words = block.info.split()
            if words and words[0] in PYTHON_FENCES:
                found.append(block)
    return found


BLOCKS = python_blocks()


def compile_block(block: Block) -> Any:
    return compile(
        block.code,
        f"<{block.id}>",
        "exec",
        flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        dont_inherit=True,
    )


def kind_of(block: Block) -> str:
    """The block's kind: program, snippet, norun or same-as."""
    if block.marker is not None:
        return block.marker
    return "program" if "trio.run(" in block.code else "snippet"


def blocks_of(kind: str) -> list[Any]:
    chosen = []
    for block in BLOCKS:
        if kind_of(block) != kind:
            continue
        marks = []
        if block.page in PENDING:
            marks.append(
                pytest.mark.skip(reason=f"{block.page}: {PENDING[block.page]}")
            )
        chosen.append(pytest.param(block, id=block.id, marks=marks))
    return chosen


# -- the harness itself ------------------------------------------------------


def test_the_docs_have_examples() -> None:
    kinds = {"snippet": 0, "program": 0, "norun": 0, "same-as": 0}
    for block in BLOCKS:
        kinds[kind_of(block)] += 1
    assert kinds["snippet"] >= 20, kinds
    assert kinds["program"] >= 2, kinds
    # Examples that are not run must stay the exception.
    assert kinds["norun"] * 5 <= len(BLOCKS), kinds


def test_block_parser() -> None:
    page = "\n".join(
        [
            "text",
            "<!-- docs: norun (needs the internet) -->",
            "",
            "````python",
            "print(1)",
            "```",
            "````",
            "```sh",
            "ls",
            "```",
            "<!-- docs: same-as tests/x.py -->",
            "~~~py",
            "x = 1",
            "~~~",
        ]
    )
    blocks = list(iter_blocks(page, "p.md"))
    assert [(b.line, b.info, b.marker, b.marker_arg) for b in blocks] == [
        (4, "python", "norun", "(needs the internet)"),
        (8, "sh", None, ""),
        (12, "py", "same-as", "tests/x.py"),
    ]
    assert blocks[0].code == "print(1)\n```\n"


# -- running the examples ----------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Any:
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
async def tls_names(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """``TLS_BASE_URL``, ``CA_CERTS`` and ``CA_PEM``, if the snippet uses them."""
    block: Block = request.node.callspec.params["block"]
    if not re.search(r"\b(TLS|CA)_[A-Z]", block.code):
        yield {}
        return
    import ssl

    ca = request.getfixturevalue("ca")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with open_server(ssl_context=context) as tls_server:
        yield {
            "TLS_BASE_URL": tls_server.url,
            "TLS_HOST": tls_server.host,
            "TLS_PORT": tls_server.port,
            "CA_CERTS": str(ca_file),
            "CA_PEM": ca.cert_pem.bytes().decode("ascii"),
        }


@pytest.mark.parametrize("block", blocks_of("snippet"))
async def test_snippet(block: Block, tls_names: dict[str, Any]) -> None:
    code = compile_block(block)
    with trio.fail_after(LIMIT):
        async with open_server() as server, trio_pool.PoolManager() as http:
            names: dict[str, Any] = {
                "__name__": "__docs__",
                "trio": trio,
                "trio_pool": trio_pool,
                "http": http,
                "BASE_URL": server.url,
                "HOST": server.host,
                "PORT": server.port,
                **tls_names,
            }
            result = eval(code, names)
            if inspect.iscoroutine(result):
                await result
            assert server.errors == []


@pytest.mark.parametrize("block", blocks_of("program"))
def test_program(block: Block, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", block.code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("block", blocks_of("norun"))
def test_norun_blocks_compile(block: Block) -> None:
    assert block.marker_arg, f"{block.id}: say why the example is not run"
    compile_block(block)


@pytest.mark.parametrize("block", blocks_of("same-as"))
def test_same_as_file(block: Block) -> None:
    path = ROOT / block.marker_arg
    assert path.is_file(), f"{block.id}: no file {block.marker_arg}"
    assert block.code == path.read_text("utf-8"), (
        f"{block.id} differs from {block.marker_arg}; keep the two identical"
    )
