"""Sphinx configuration of fastxent's documentation site.

Build (warnings are errors; the gallery's examples run during the build):

    python -m sphinx -W -b html docs docs/_build/html

The fastxent that is imported is documented: the installed package, or the
in-place build of the source tree with PYTHONPATH=src.  Everything under
reference/generated/, auto_examples/ and _build/ is written by the build.
"""
import os
import re
import sys
import time

import fastxent

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)         # for _gallery_argv, named in sphinx_gallery_conf
sys.stderr.write(f"documenting fastxent {fastxent.__version__} from {os.path.dirname(fastxent.__file__)}\n")

project = "fastxent"
author = "the fastxent developers"
copyright = f"{time.strftime('%Y')}, {author}"
release = fastxent.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
    "sphinx_design",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# ARCHITECTURE.md is not a page of its own: architecture.rst includes it.
exclude_patterns = ["_build", "ARCHITECTURE.md", "**/GALLERY_HEADER.rst", "sg_execution_times.rst"]
templates_path = ["_templates"]
default_role = "py:obj"          # `name` links to the API, as in NumPy's docs
nitpicky = False

# -- the API reference ------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "none"      # the typing overloads would repeat each signature five times;
                                # the numpydoc Parameters section gives the types
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True
# Every documented object's docstring must be complete on its own: a docstring,
# every parameter with a type and a description, the return values described,
# an example, a one-line summary.  (GL08 no docstring, PR01 parameter missing,
# PR02 unknown parameter, PR03 parameters out of order, PR04 no type, PR06
# "integer" for "int", PR07 no description, PR10 no space before the colon,
# RT01 no Returns, RT03 return value not described, EX01 no Examples, SS01 no
# summary, SS02/SS03/SS05 summary's form, SS06 summary over several lines,
# GL02/GL03 blank lines, SA04 See Also entry without a description.)
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "PR03", "PR04", "PR06", "PR07", "PR10",
                              "RT01", "RT03", "EX01", "SS01", "SS02", "SS03", "SS05", "SS06",
                              "GL02", "GL03", "SA04"}
# Every public function, class and method passes these checks.  Excluded, with
# the reason: fastxent.dask's two constants, documented by "#:" comments above
# them (autodata): numpydoc reads such a comment as a docstring without closing
# quotes (GL02), and a constant has no call to show in an Examples section (EX01).
numpydoc_validation_exclude = {
    r"^fastxent\.dask\.(TREE_ARITY|SLICE_KERNEL)$",
}

intersphinx_mapping = {}        # the build reaches no network: no inventories are fetched

# -- the gallery: every script of examples/ runs at build time ---------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(HERE, "..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep),      # run every example, not only plot_*.py
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "show_signature": False,
    "image_scrapers": ("matplotlib",),
    # the slow examples' small mode at build time (docs/_gallery_argv.py)
    "reset_argv": "_gallery_argv.reset_argv",
}

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastxent {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # no "on this page" column where the page is mostly code: room for its lines
    "secondary_sidebar_items": {"user_guide/**": ["page-toc"], "architecture": ["page-toc"],
                                "reference/*": ["page-toc"]},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_last_updated_fmt = None


# -- ARCHITECTURE.md: included when present, a note when not ---------------
def _architecture_source(app, docname, source):
    """architecture.rst includes ARCHITECTURE.md; where that file is not in the
    tree yet, the page says so instead of failing the build."""
    if docname == "architecture" and not os.path.isfile(os.path.join(HERE, "ARCHITECTURE.md")):
        source[0] = re.sub(
            r"^\.\. include:: ARCHITECTURE\.md\n(?:[ \t]+:.*\n)*",
            "Architecture\n============\n\n.. note::\n\n   ``docs/ARCHITECTURE.md`` is not in "
            "this source tree yet; this page will include it.\n",
            source[0], flags=re.M)


def setup(app):
    app.connect("source-read", _architecture_source)
