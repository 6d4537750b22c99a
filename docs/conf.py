"""Sphinx configuration of the hwnas docs site (MyST Markdown pages, the furo theme, autodoc for the contracts).

Built strictly (warnings are errors) by `make docs-check`, which the test tier runs; `make docs` builds and serves
it on 127.0.0.1.
"""

from __future__ import annotations

# hwnas is imported from the installed package (make install): adding src/ to sys.path would let the entry
# point src/profile.py shadow the standard library's profile module.

project = "hwnas"
author = "hwnas developers"
copyright = "2026, hwnas developers"  # noqa: A001 - Sphinx's name
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
highlight_language = "text"  # blocks without a language (logs, trees) are shown as written
html_title = "hwnas"
html_static_path: list[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
suppress_warnings = ["myst.strikethrough"]
autodoc_inherit_docstrings = False  # Lightning's own docstrings use roles of its docs site
