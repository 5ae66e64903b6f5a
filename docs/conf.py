"""Sphinx configuration: MyST markdown pages, API reference from docstrings.

Build with ``nox -s docs`` (warnings are errors). The pages are plain
markdown so that they read well on GitHub too.
"""

from __future__ import annotations

from typing import Any

import trio_pool

project = "trio_pool"
author = "the trio_pool authors"
copyright = "the trio_pool authors"  # noqa: A001 - Sphinx's setting name
release = trio_pool.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]

# Markdown: ``[text](#heading)`` links, and ```{directive} fences.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: Google-style docstrings, signatures as written.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True}
# Type hints name private modules and third-party classes; their targets are
# not in these docs, and no network is used for intersphinx.
nitpicky = False

html_theme = "furo"
html_title = f"trio_pool {release}"


def _public_bases(
    app: Any, name: str, obj: object, options: object, bases: list[Any]
) -> None:
    """Name base classes by their public names (``trio_pool.HTTPError``)."""
    for i, base in enumerate(bases):
        public = getattr(base, "__name__", "")
        if getattr(trio_pool, public, None) is base:
            bases[i] = f":py:class:`trio_pool.{public}`"


def setup(app: Any) -> None:
    app.connect("autodoc-process-bases", _public_bases)
