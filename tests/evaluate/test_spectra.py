"""Flat-sky power spectra: normalisation, mean removal, cross spectra."""

import math

import torch

from cenn.evaluate.spectra import Binning, cl_to_dl, power_spectrum
from cenn.sky.geometry import PatchGeometry

GEOM = PatchGeometry(128, 90.0)
BINS = Binning.linear(100, 4000, 300)


def _white(n: int, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return sigma * torch.randn((n, GEOM.npix, GEOM.npix), generator=g, dtype=torch.float64)


def test_white_noise_gives_sigma_squared_times_pixel_area():
    cl = power_spectrum(_white(64, 30.0), GEOM, BINS).mean(0)
    expected = 30.0**2 * GEOM.pixel_area_sr
    assert torch.allclose(cl, torch.full_like(cl, expected), rtol=0.05)


def test_patch_mean_is_removed_by_default():
    maps = _white(4, 30.0)
    offset = maps + 1e4
    assert torch.allclose(power_spectrum(offset, GEOM, BINS), power_spectrum(maps, GEOM, BINS),
                          rtol=1e-9)
    leaked = power_spectrum(offset, GEOM, BINS, subtract_mean=False)[:, 0]
    assert (leaked > 10 * power_spectrum(maps, GEOM, BINS)[:, 0]).all()


def test_cross_spectrum_of_a_map_with_itself_is_its_auto_spectrum():
    maps = _white(3, 10.0)
    assert torch.allclose(power_spectrum(maps, GEOM, BINS, other=maps), power_spectrum(maps, GEOM, BINS))


def test_dl_convention():
    assert math.isclose(float(cl_to_dl(torch.tensor(1000.0), torch.tensor(2 * math.pi))),
                        1000 * 1001)
