"""Sphinx configuration of the skpart documentation."""

import os
import re
import sys
from pathlib import Path

from docutils import nodes

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
    # Ships MathJax and points the pages at the copy in _static/mathjax, so the
    # maths renders without a network (the default loads MathJax from a CDN).
    "sphinx-mathjax-offline",
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
# Inherited members too: get_params, set_params, set_output,
# get_feature_names_out and inverse_transform come from base classes.
autodoc_default_options = {"members": True, "inherited-members": True}
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


def _inherited_sklearn_refs_as_text(app, env, node, contnode):
    """Print the labels that sklearn's inherited docstrings cite as plain text.

    ``set_output`` and ``get_metadata_routing`` come from scikit-learn with
    ``:ref:`` links into scikit-learn's own user guide. Intersphinx resolves them
    online; an offline build has no inventory, so they become text instead of
    failing ``-W``. Only references from scikit-learn's docstrings are touched.
    """
    if node.get("refdomain") != "std" or node.get("reftype") != "ref":
        return None
    if "docstring of sklearn." not in (node.source or ""):
        return None
    example = re.fullmatch(
        r"sphx_glr_auto_examples_.*?(plot_\w+\.py)", node["reftarget"]
    )
    if example and not node.get("refexplicit"):
        return nodes.Text(f"scikit-learn's example {example[1]}")
    return contnode


def setup(app):
    if not intersphinx_mapping:
        app.connect("missing-reference", _inherited_sklearn_refs_as_text)
