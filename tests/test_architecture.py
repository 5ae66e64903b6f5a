"""The package's import rules, read from the source with ``ast``.

- only ``_http11`` imports h11 (and only the HTTP/2 engine, when it comes,
  imports h2);
- the pure modules import neither trio nor a protocol library;
- the core never imports ``trio_pool.testing`` or the CLI;
- there is no import cycle anywhere in ``trio_pool/``.

Every import counts: inside functions and under ``if TYPE_CHECKING:`` too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_pool"
PURE = ("_retry", "_redirect", "_url", "_headers", "_fields", "_decoders", "_timeout")
PROTOCOL_LIBRARIES = {"h11": {"trio_pool._http11"}, "h2": {"trio_pool._http2"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str) -> Iterator[str]:
    """Every module ``name`` imports, resolved to absolute names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from . import _send`` imports a module, not the package.
            submodules = [f"{base}.{a.name}" for a in node.names]
            if all(sub in MODULES for sub in submodules):
                yield from submodules
            else:
                yield base


def internal(name: str) -> set[str]:
    found = set()
    for target in imported(name):
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def top_level(name: str) -> set[str]:
    return {target.partition(".")[0] for target in imported(name)}


def test_the_rules_see_the_whole_package() -> None:
    # A check that found no modules or imports would pass for the wrong reason.
    assert {"trio_pool._http11", "trio_pool._pool", "trio_pool._send"} <= set(MODULES)
    assert "h11" in top_level("trio_pool._http11")
    assert "trio_pool._send" in internal("trio_pool._pool")
    assert "trio_pool._response" in internal("trio_pool._send")  # TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize("library", sorted(PROTOCOL_LIBRARIES))
def test_one_module_speaks_each_protocol(library: str) -> None:
    speakers = {
        name
        for name in MODULES
        if not name.startswith("trio_pool.testing") and library in top_level(name)
    }
    assert speakers <= PROTOCOL_LIBRARIES[library]


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    name = f"trio_pool.{module}"
    assert not top_level(name) & {"trio", "h11", "h2", "socket", "ssl"}
    # Nor do they reach the I/O code through another trio_pool module.
    reached = set()
    todo = [name]
    while todo:
        for target in internal(todo.pop()):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    for target in reached:
        assert not top_level(target) & {"trio", "h11", "h2"}, (name, target)


def test_the_core_never_imports_testing_or_the_cli() -> None:
    core = [name for name in MODULES if not name.startswith(_OUTSIDE_CORE)]
    for name in core:
        for target in internal(name):
            assert not target.startswith(_OUTSIDE_CORE), (name, target)


_OUTSIDE_CORE = ("trio_pool.testing", "trio_pool.__main__", "trio_pool._cli")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """The first import cycle in ``graph`` (module -> modules it imports)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[name] = "done"
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    assert find_cycle({name: internal(name) for name in MODULES}) is None
