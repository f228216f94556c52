"""The documentation's sources keep up with the package: every public name has
an API reference entry, and every example can be a gallery page.

Cheap (no Sphinx needed); skipped where the source tree's docs/ is absent (an
installed wheel tested from elsewhere).
"""
import ast
import glob
import importlib.util
import os
import re

import pytest

import fastxent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "docs", "reference")
EXAMPLES = os.path.join(ROOT, "examples")

pytestmark = pytest.mark.skipif(not os.path.isdir(REFERENCE), reason="docs/ not present")

# The submodules that are public API (SPEC.md), each documented on a page of its
# own once it exists in the package.
PUBLIC_SUBMODULES = ("objectives", "torch", "jax", "dask")


def _documented_names():
    """Names listed in the autosummary tables of docs/reference/*.rst, with the
    module set by the last ``currentmodule`` above them."""
    names = set()
    for path in glob.glob(os.path.join(REFERENCE, "*.rst")):
        module = "fastxent"
        in_table = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\.\. (?:py:)?currentmodule:: (\S+)", line)
                if m:
                    module = m.group(1)
                if line.startswith(".. autosummary::"):
                    in_table = True
                    continue
                if in_table:
                    if line.strip() and not line.startswith(" "):
                        in_table = False
                    elif line.strip() and not line.strip().startswith(":"):
                        names.add(f"{module}.{line.strip()}")
    return names


def _documented_modules():
    modules = set()
    for path in glob.glob(os.path.join(REFERENCE, "*.rst")):
        with open(path, encoding="utf-8") as f:
            modules |= set(re.findall(r"^\.\. (?:py:)?(?:automodule|currentmodule|module):: (\S+)",
                                      f.read(), re.M))
    return modules


def test_every_public_name_has_a_reference_page():
    documented = _documented_names()
    missing = sorted(f"fastxent.{name}" for name in fastxent.__all__
                     if name != "__version__" and f"fastxent.{name}" not in documented)
    assert not missing, (f"public but not in the API reference: {missing}; add each to the "
                         f"autosummary list of its page in docs/reference/")


def test_every_reference_entry_exists():
    """The converse: a documented name that is gone fails the docs build; say so here."""
    stale = []
    for qualname in sorted(_documented_names()):
        module, _, name = qualname.rpartition(".")
        if importlib.util.find_spec(module) is None:
            stale.append(qualname)
            continue
        if module == "fastxent" and not hasattr(fastxent, name):
            stale.append(qualname)
    assert not stale, f"in docs/reference/ but not in the package: {stale}"


@pytest.mark.parametrize("sub", PUBLIC_SUBMODULES)
def test_public_submodules_have_a_reference_page(sub):
    if importlib.util.find_spec(f"fastxent.{sub}") is None:
        pytest.skip(f"fastxent.{sub} is not in this build yet")
    assert f"fastxent.{sub}" in _documented_modules(), (
        f"fastxent.{sub} has no page in docs/reference/: add reference/{sub}.rst with "
        f"'.. currentmodule:: fastxent.{sub}' and an autosummary of its names, and list it "
        f"in reference/index.rst")


EXAMPLE_FILES = sorted(glob.glob(os.path.join(EXAMPLES, "*.py")))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=os.path.basename)
def test_example_is_a_gallery_page(path):
    """sphinx-gallery needs a docstring that opens with a reST title."""
    with open(path, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read()), clean=False)
    assert doc, f"{path}: no module docstring"
    lines = doc.strip("\n").splitlines()
    assert len(lines) >= 2 and lines[0].strip() and re.fullmatch(r"=+", lines[1].strip()) \
        and len(lines[1].strip()) >= len(lines[0].strip()), (
        f"{os.path.basename(path)}: its docstring must start with a title underlined "
        f"with '=' (the gallery page's title), got {lines[:2]}")
