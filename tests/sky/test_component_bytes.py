"""The skies of the Galactic components (dust, co, free_free, synchrotron) are pinned: for one fixed
patch (batch size 1, shipped defaults) each component must give the maps saved in
``tests/sky/data/component_maps.npz``, so that any change of a sky, meant or not, is noticed.

A deliberate change of a component updates its pin: rerun the seeded script
``tests/sky/data/make_component_maps.py`` and put the new SHA-256 below. A refactoring keeps the
sky: its maps stay bit-for-bit those of the file.

The file's maps were computed on one CPU (AVX-512, torch on one thread); they are the same bytes
for every thread count there. Other CPUs take other code paths in MKL's FFT and torch's vector
kernels (AVX2, SSE: seen here with ``MKL_ENABLE_INSTRUCTIONS`` and ``ATEN_CPU_CAPABILITY``), which
round differently, by up to 2e-6 relative, so the maps are compared within 1e-5 relative rather
than by their checksum; the checksum pins the file itself.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).parent / "data" / "make_component_maps.py"
_spec = importlib.util.spec_from_file_location("make_component_maps", SCRIPT)
maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(maker)

#: SHA-256 of each component's float32 map bytes in the fixture (C order).
SHA256 = {
    "dust": "1e492f8434766f1f039d8c12680f4611624c6fda3eec7ee60d39529eb9d1ae15",
    "co": "c72373aa60823c78a0e07ec057add1073dbbcb88ec5c6b7d87e25ed38d1de114",
    "free_free": "a6c347e5b346e8ade8fdf26a6cdc68b9fab8941ac95cbf311a9d0dceb994d351",
    "synchrotron": "f10b831ca26fa46ee7412326e9fb222d8abacb7ee3fcb66979c4e35006642833",
}


@pytest.fixture(scope="module")
def saved() -> dict[str, np.ndarray]:
    with np.load(maker.FIXTURE) as data:
        return {name: data[name] for name in data.files}


def test_the_fixture_is_the_pinned_one(saved):
    assert set(saved) == set(SHA256) == set(maker.NAMES)
    for name, maps in saved.items():
        assert maps.dtype == np.float32 and maps.shape == (3, 48, 48), name
        assert hashlib.sha256(maps.tobytes()).hexdigest() == SHA256[name], name


@pytest.mark.parametrize("name", sorted(SHA256))
def test_component_sky_is_unchanged(name, saved):
    maps = maker.component_maps(name)
    assert maps.dtype == torch.float32 and bool(torch.isfinite(maps).all())
    torch.testing.assert_close(maps, torch.from_numpy(saved[name]), rtol=1e-5, atol=0.0)
