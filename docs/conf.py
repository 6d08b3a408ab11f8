"""Sphinx configuration of the skpart documentation."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import skpart  # noqa: E402

project = "skpart"
author = "the skpart developers"
copyright = "2026, the skpart developers"
release = skpart.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = f"skpart {release}"

autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Cross-links to the projects skpart builds on. Offline builds (CI here has no
# network) set SKPART_DOCS_OFFLINE=1 and skip fetching their inventories.
if os.environ.get("SKPART_DOCS_OFFLINE"):
    intersphinx_mapping = {}
else:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
    }

# The gallery runs the examples when SKPART_DOCS_RUN_EXAMPLES=1 (in their quick,
# digits-based mode unless SKPART_DATA is set); otherwise it renders them
# without executing, which is what CI does.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/(plot_|quickstart)",
    "plot_gallery": bool(os.environ.get("SKPART_DOCS_RUN_EXAMPLES")),
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
}
