"""Flat-sky power spectra: normalisation, mean removal, cross spectra, unbiasedness on Gaussian
fields, beam and pixel-window deconvolution, NaMaster agreement (when pymaster is installed)."""

import math

import numpy as np
import pytest
import torch
from namaster_support import import_pymaster

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import (
    Binning,
    SpectrumEstimator,
    _full_ell,
    cl_to_dl,
    cosine_taper,
    expected_spectrum,
    gaussian_beam_window,
    pixel_window_function,
    power_spectrum,
)

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


# --- Gaussian fields of known spectrum ------------------------------------------------------------

def _cl_model(ell: np.ndarray) -> np.ndarray:
    """A smooth red spectrum (µK² sr): a power law with a floor."""
    ell = np.maximum(ell, 1.0)
    return 1e-3 * (ell / 100.0) ** -2.5 + 1e-8


def _gaussian_fields(n: int, geometry: PatchGeometry, seed: int, beam_arcmin: float | None = None):
    """Gaussian fields of spectrum :func:`_cl_model` (optionally beam-smoothed), periodic on a grid
    twice the patch and cropped to it; returns (n, npix, npix) float64."""
    gen = geometry.padded(geometry.npix // 2)
    g = torch.Generator().manual_seed(seed)
    white = torch.randn((n, gen.npix, gen.npix), generator=g, dtype=torch.float64)
    ell = _full_ell(gen, "cpu")
    amp = torch.from_numpy(np.sqrt(_cl_model(ell.numpy()) / gen.pixel_area_sr))
    amp[0, 0] = 0.0
    if beam_arcmin is not None:
        amp = amp * gaussian_beam_window(ell, beam_arcmin)
    field = torch.fft.ifft2(torch.fft.fft2(white) * amp).real
    m = geometry.npix // 2
    return field[:, m : m + geometry.npix, m : m + geometry.npix]


def test_estimate_is_unbiased_on_gaussian_fields_of_known_spectrum():
    geometry = PatchGeometry(64, 90.0)
    binning = Binning.paper(geometry)
    maps = _gaussian_fields(400, geometry, seed=1)
    est = power_spectrum(maps, geometry, binning, subtract_mean=False).numpy()
    ell_table = np.arange(0, 20000, dtype=float)
    expected = expected_spectrum(ell_table, _cl_model(ell_table), geometry, binning)
    mean, err = est.mean(0), est.std(0) / math.sqrt(len(est))
    ok = np.isfinite(expected)
    assert ok.sum() > 10
    pull = (mean[ok] - expected[ok]) / err[ok]
    assert np.all(np.abs(pull) < 4.0), pull
    # and the model is not trivially matched: a 10 % higher spectrum is excluded
    assert np.mean(np.abs((mean[ok] - 1.1 * expected[ok]) / err[ok]) > 4.0) > 0.5


def test_beam_deconvolution_recovers_the_unsmoothed_spectrum():
    geometry = PatchGeometry(128, 90.0)
    binning = Binning.linear(200, 2400, 200)
    sky = _gaussian_fields(16, geometry, seed=2)
    smoothed = _gaussian_fields(16, geometry, seed=2, beam_arcmin=5.0)
    plain = SpectrumEstimator(geometry, binning)(sky)
    raw = SpectrumEstimator(geometry, binning)(smoothed)
    deconvolved = SpectrumEstimator(geometry, binning, beam_fwhm_arcmin=5.0)(smoothed)
    assert torch.allclose(deconvolved.mean(0), plain.mean(0), rtol=0.03)
    assert (raw.mean(0)[-1] < 0.3 * plain.mean(0)[-1]).item()  # the beam was really there


def test_pixel_window_is_the_sinc_of_half_the_pixel_phase():
    geometry = PatchGeometry(64, 90.0)
    window = pixel_window_function(geometry)
    x = math.pi * 5 / 64  # mode (0, 5): ℓ_x θ / 2
    assert math.isclose(float(window[0, 5]), math.sin(x) / x, rel_tol=1e-12)
    assert math.isclose(float(window[3, 5]), math.sin(x) / x * math.sin(3 * x / 5) / (3 * x / 5),
                        rel_tol=1e-12)


def test_pixel_window_deconvolution_undoes_block_averaging():
    fine_geometry, factor = PatchGeometry(512, 90.0 / 8), 8
    coarse_geometry = PatchGeometry(64, 90.0)
    binning = Binning.linear(300, 0.6 * coarse_geometry.ell_nyquist, 300)
    fine = _gaussian_fields(4, fine_geometry, seed=3)
    coarse = fine.reshape(4, 64, factor, 64, factor).mean(dim=(2, 4))
    truth = SpectrumEstimator(fine_geometry, binning)(fine).mean(0)
    raw = SpectrumEstimator(coarse_geometry, binning)(coarse).mean(0)
    corrected = SpectrumEstimator(coarse_geometry, binning, pixel_window=True)(coarse).mean(0)
    assert torch.allclose(corrected, truth, rtol=0.03)
    assert not torch.allclose(raw, truth, rtol=0.1)


def test_mode_scatter_of_white_noise_equals_its_mean():
    est = SpectrumEstimator(GEOM, BINS)
    mean, std = est.binned(est.fourier(_white(1, 5.0)), return_std=True)
    # each Fourier mode's power is exponentially distributed: standard deviation = mean
    ratio = (std / mean)[0, 2:]
    assert abs(float(ratio.mean()) - 1.0) < 0.08, ratio
    assert float(ratio.min()) > 0.7


def test_fourier_modes_are_reusable_for_differences_and_crosses():
    est = SpectrumEstimator(GEOM, BINS)
    a, b = _white(2, 3.0, seed=1), _white(2, 4.0, seed=2)
    fa, fb = est.fourier(a), est.fourier(b)
    assert torch.allclose(est.binned(fa - fb), est(a - b), rtol=1e-10)
    assert torch.allclose(est.binned(fa, fb), power_spectrum(a, GEOM, BINS, other=b), rtol=1e-10)


def test_binning_schemes():
    assert Binning.from_edges([2, 10, 30]).edges == (2.0, 10.0, 30.0)
    paper = Binning.paper(PatchGeometry(256, 90.0))
    widths = np.diff(paper.edges)
    assert paper.edges[0] == 50.0
    assert set(widths[np.asarray(paper.edges[1:]) <= 1000]) == {50.0}
    assert set(widths[np.asarray(paper.edges[:-1]) >= 1000]) == {200.0}
    assert paper.edges[-1] <= PatchGeometry(256, 90.0).ell_nyquist
    with pytest.raises(ValueError, match="increasing"):
        Binning.from_edges([10, 5])


def test_agrees_with_namaster_flat_sky():
    nmt = import_pymaster()  # skips without pymaster, except in CI (CENN_REQUIRE_NAMASTER=1)
    geometry = PatchGeometry(128, 90.0)
    binning = Binning.linear(200, 4000, 200)
    maps = _gaussian_fields(1, geometry, seed=4)[0].numpy()
    taper = cosine_taper(geometry.npix, geometry.npix // 8).numpy()
    side = geometry.npix * geometry.pixel_rad
    field = nmt.NmtFieldFlat(side, side, taper, [maps])
    bins = nmt.NmtBinFlat(np.asarray(binning.edges[:-1]), np.asarray(binning.edges[1:]))
    # NaMaster's coupled pseudo-C_ℓ of the tapered map, divided by <w²> like ours
    theirs = nmt.compute_coupled_cell_flat(field, field, bins)[0] / np.mean(taper**2)
    ours = power_spectrum(torch.from_numpy(maps), geometry, binning, subtract_mean=False).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0.02)
