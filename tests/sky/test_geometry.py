import math

import pytest
import torch

from cenn.sky.flat.geometry import PatchGeometry


def test_default_patch_matches_the_paper():
    g = PatchGeometry()
    assert g.shape == (256, 256)
    assert g.side_deg == pytest.approx(6.4)
    assert g.pixel_area_sr == pytest.approx(1.9039e-7, rel=1e-4)
    assert g.area_sr == pytest.approx(1.2477e-2, rel=1e-4)
    assert g.ell_fundamental == pytest.approx(56.25, rel=1e-3)
    assert g.ell_nyquist == pytest.approx(7200, rel=1e-3)


def test_ell_grid_of_rfft2():
    g = PatchGeometry(8, 90.0)
    ell = g.ell()
    assert ell.shape == (8, 5)
    assert ell[0, 0] == 0
    assert ell[0, 1].item() == pytest.approx(g.ell_fundamental)
    assert ell[4, 4].item() == pytest.approx(math.sqrt(2) * g.ell_nyquist)


def test_padding_and_offsets():
    g = PatchGeometry(16, 60.0).padded(4)
    assert g.npix == 24 and g.pixel_arcsec == 60.0
    off = g.offsets_rad()
    assert torch.allclose(off, -off.flip(0))
    assert (off[1] - off[0]).item() == pytest.approx(g.pixel_rad)


@pytest.mark.parametrize("kwargs", [{"npix": 4}, {"pixel_arcsec": 0.0}, {"npix": 32.0}])
def test_bad_geometry_refused(kwargs):
    with pytest.raises(ValueError):
        PatchGeometry(**kwargs)
