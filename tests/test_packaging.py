"""What an installed fastxent carries: one version everywhere, its typing
marker, stubs, Cython declarations and C headers."""
import os
from importlib import metadata

import pytest

import fastxent

PKG = os.path.dirname(os.path.abspath(fastxent.__file__))


def _installed_distribution():
    """The distribution the imported fastxent came from, or None (a source checkout)."""
    try:
        dist = metadata.distribution("fastxent")
    except metadata.PackageNotFoundError:
        return None
    init = dist.locate_file(os.path.join("fastxent", "__init__.py"))
    return dist if os.path.exists(init) and os.path.samefile(init, fastxent.__file__) else None


def test_version_matches_the_installed_metadata():
    dist = _installed_distribution()
    if dist is None:
        pytest.skip("fastxent is imported from a source tree, not an installed distribution")
    assert dist.version == fastxent.__version__


def test_version_is_a_release_string():
    parts = fastxent.__version__.split(".")
    assert len(parts) >= 3 and all(p.isdigit() for p in parts[:3]), fastxent.__version__


@pytest.mark.parametrize("name", ["py.typed", "_kernels_baseline.pyi", "kernels.pxd",
                                  os.path.join("include", "fx_xent.h")])
def test_package_files(name):
    assert os.path.isfile(os.path.join(PKG, name)), name


def test_license_is_declared():
    dist = _installed_distribution()
    if dist is None:
        pytest.skip("fastxent is imported from a source tree, not an installed distribution")
    assert dist.metadata.get("License-Expression") == "BSD-3-Clause"
    assert any(f.name == "LICENSE" for f in dist.files or [])
