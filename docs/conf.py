"""Sphinx configuration: MyST markdown pages, API reference from docstrings.

Build with ``nox -s docs`` (warnings are errors). The pages are plain
markdown so that they read well on GitHub too.
"""

from __future__ import annotations

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
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints name private modules and third-party classes; their targets are
# not in these docs, and no network is used for intersphinx.
nitpicky = False

html_theme = "furo"
html_title = f"trio_pool {release}"
