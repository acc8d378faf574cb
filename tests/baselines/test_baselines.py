"""Classical baselines on constructed inputs with known answers: unit CMB response, the analytic
noise of the ILC weights, NILC against ILC on scale-dependent foregrounds, the Wiener filter's
residual against its analytic expectation, needlet windows and options."""

import math

import numpy as np
import pytest
import torch

from cenn.baselines.common import ilc_weights
from cenn.baselines.wiener import WienerModel, WienerSeparator
from cenn.model.linear import beam_ratios
from cenn.model.needlets import (
    cosine_needlets,
    crop_modes,
    gaussian_needlets,
    half_plane_counts,
    pad_modes,
    window_modes,
)
from cenn.separators import InputInfo, build_separator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import gaussian_beam_window

BEAMS = (7.22, 4.90, 4.92)  # Planck HFI 143, 217, 353 GHz (arcmin)
NOISE = (22.0, 30.0, 100.0)  # µK per pixel, for the tests
INFO = InputInfo(frequencies_ghz=(143.0, 217.0, 353.0), band_names=("143", "217", "353"),
                 beam_fwhm_arcmin=BEAMS, target_band="217", target_beam_fwhm_arcmin=4.90,
                 pixel_arcsec=90.0, noise_uk_per_pixel=NOISE)


def _field(n_maps: int, geometry: PatchGeometry, cl, seed: int) -> torch.Tensor:
    """Periodic Gaussian fields ``(n_maps, n, n)`` of spectrum ``cl(ℓ)`` (µK² sr), in Fourier space
    (``rfft2`` modes)."""
    g = torch.Generator().manual_seed(seed)
    white = torch.randn((n_maps, geometry.npix, geometry.npix), generator=g, dtype=torch.float64)
    ell = geometry.ell()
    amp = torch.sqrt(cl(ell.clamp_min(1.0)) / geometry.pixel_area_sr)
    amp[0, 0] = 0.0
    return torch.fft.rfft2(white) * amp


def _cmb_cl(ell: torch.Tensor) -> torch.Tensor:
    return 2e-3 * (ell / 100.0) ** -2.2  # µK² sr, CMB-like amplitude near ℓ ~ 1000


def _observe(sky: dict[str, tuple[torch.Tensor, tuple[float, ...]]], geometry: PatchGeometry,
             noise: tuple[float, ...] | None, seed: int = 99) -> tuple[torch.Tensor, torch.Tensor]:
    """Bands ``(N, 3, n, n)`` = Σ components (Fourier modes × SED) at each band's beam + white noise,
    and the label (the CMB at the 217 GHz beam)."""
    ell = geometry.ell()
    n = geometry.npix
    bands = []
    for c, fwhm in enumerate(BEAMS):
        total = sum(modes * sed[c] for modes, sed in sky.values())
        bands.append(torch.fft.irfft2(total * gaussian_beam_window(ell, fwhm), s=(n, n)))
    maps = torch.stack(bands, 1)
    if noise is not None:
        g = torch.Generator().manual_seed(seed)
        maps = maps + torch.tensor(noise, dtype=torch.float64)[:, None, None] * torch.randn(
            maps.shape, generator=g, dtype=torch.float64)
    label = torch.fft.irfft2(sky["cmb"][0] * gaussian_beam_window(ell, 4.90), s=(n, n))
    return maps, label


GEOM = PatchGeometry(128, 90.0)


@pytest.fixture(scope="module")
def cmb():
    return _field(6, GEOM, _cmb_cl, seed=1)


@pytest.mark.parametrize("name", ["ilc", "hilc", "nilc"])
def test_unit_response_to_the_cmb(name, cmb):
    maps, label = _observe({"cmb": (cmb, (1.0, 1.0, 1.0))}, GEOM, noise=None)
    out = build_separator(name, max_gain=1e12).separate(maps, INFO)[:, 0].double()
    assert out.shape == label.shape
    assert float((out - label).abs().max()) < 1e-4 * float(label.std())


@pytest.mark.parametrize("name", ["ilc", "hilc", "nilc"])
def test_the_patch_mean_comes_back(name, cmb):
    """A CMB-only patch + 40 µK keeps its mean; with noise, the 40 µK come back whole (HILC and NILC
    returned about 0: an ILC of the ℓ = 0 mode alone cancels it, CMB included)."""
    separator = build_separator(name)
    maps, label = _observe({"cmb": (cmb, (1.0, 1.0, 1.0))}, GEOM, noise=None)
    out = separator.separate(maps + 40.0, INFO)[:, 0].double()
    assert torch.allclose(out.mean(dim=(-2, -1)), label.mean(dim=(-2, -1)) + 40.0, atol=0.1)
    noisy, _ = _observe({"cmb": (cmb, (1.0, 1.0, 1.0))}, GEOM, noise=NOISE)
    shift = (separator.separate(noisy + 40.0, INFO) - separator.separate(noisy, INFO))[:, 0].double()
    assert torch.allclose(shift.mean(dim=(-2, -1)), torch.full((len(cmb),), 40.0, dtype=torch.float64),
                          atol=1e-3)


def test_ilc_residual_is_the_analytic_noise_of_its_weights(cmb):
    maps, label = _observe({"cmb": (cmb, (1.0, 1.0, 1.0))}, GEOM, noise=NOISE)
    ilc = build_separator("ilc")
    residual = ilc.separate(maps, INFO)[:, 0].double() - label
    # white noise through the beam matching: variance σ² ⟨T(k)²⟩ over the full Fourier grid
    ell = torch.fft.fftfreq(GEOM.npix, d=GEOM.pixel_rad, dtype=torch.float64)
    ell = 2 * math.pi * torch.sqrt(ell[:, None] ** 2 + ell[None, :] ** 2)
    ratios = beam_ratios(ell, INFO.beam_fwhm_arcmin, INFO.target_beam_fwhm_arcmin, 100.0)
    gain2 = (ratios**2).mean(dim=(-2, -1))
    noise_cov = torch.diag(torch.tensor(NOISE, dtype=torch.float64) ** 2 * gain2)
    w = ilc.last_weights
    expected = torch.einsum("nc,cd,nd->n", w, noise_cov, w).sqrt()
    assert torch.allclose(residual.flatten(1).std(1), expected, rtol=0.05)
    # with unit response, the optimal weights are those of the noise alone: N⁻¹1 / 1ᵀN⁻¹1
    optimal = ilc_weights(noise_cov)
    assert torch.allclose(w, optimal.expand_as(w), atol=0.05)
    best = float(1 / torch.linalg.inv(noise_cov).sum().sqrt())  # σ of the optimal combination
    assert float(residual.std()) == pytest.approx(best, rel=0.05)


def _middle_cl(ell: torch.Tensor) -> torch.Tensor:
    return 2.0 * torch.exp(-(((ell - 1500.0) / 600.0) ** 2))


def _small_cl(ell: torch.Tensor) -> torch.Tensor:
    return 1e-1 * (ell / 2000.0) ** 2 * torch.exp(-ell / 1000.0)


def _scale_dependent_sky(cmb: torch.Tensor, n: int = 6, seed: int = 2) -> dict:
    """Two foregrounds with different SEDs dominating different scales: one set of weights for the
    whole patch cannot remove both, one per scale can."""
    return {"cmb": (cmb, (1.0, 1.0, 1.0)),
            "middle": (_field(n, GEOM, _middle_cl, seed=seed), (2.0, 0.3, 1.0)),
            "small": (_field(n, GEOM, _small_cl, seed=seed + 1), (1.5, 1.0, 0.1))}


def test_nilc_beats_ilc_on_scale_dependent_foregrounds(cmb):
    maps, label = _observe(_scale_dependent_sky(cmb), GEOM, noise=(2.0, 2.0, 4.0))
    rms = {name: float((build_separator(name).separate(maps, INFO)[:, 0].double() - label).std())
           for name in ("ilc", "hilc", "nilc")}
    assert rms["nilc"] < 0.3 * rms["ilc"], rms
    assert rms["hilc"] < 0.3 * rms["ilc"], rms


def test_wiener_residual_power_equals_its_expectation(cmb):
    sky = _scale_dependent_sky(cmb)
    calibration = _scale_dependent_sky(_field(64, GEOM, _cmb_cl, seed=10), n=64, seed=11)
    cal_maps, cal_label = _observe(calibration, GEOM, noise=(2.0, 2.0, 4.0), seed=7)
    cmb_bands, _ = _observe({"cmb": calibration["cmb"]}, GEOM, noise=None)
    model = WienerModel.from_maps(cal_maps, cmb_bands, cal_label, GEOM.pixel_arcsec, bin_width=400.0)
    maps, label = _observe(sky, GEOM, noise=(2.0, 2.0, 4.0))
    residual = WienerSeparator(model=model).separate(maps, INFO)[:, 0].double() - label
    measured = WienerModel.from_maps(residual[:, None], torch.zeros_like(residual[:, None]), residual,
                                     GEOM.pixel_arcsec, bin_width=400.0).label
    expected = model.residual_spectrum()
    ok = model.edges[1:] <= 6000  # beyond, the label is beam-suppressed below float rounding
    ratio = (measured[ok] / expected[ok]).numpy()
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1), ratio
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio
    # and it beats the ILC on the same maps
    ilc = float((build_separator("ilc").separate(maps, INFO)[:, 0].double() - label).std())
    assert float(residual.std()) < ilc


@pytest.mark.parametrize("windows", [lambda ell: cosine_needlets(ell, (0.0, 300.0, 1000.0, 3000.0)),
                                     lambda ell: gaussian_needlets(ell, (60.0, 20.0, 8.0))])
def test_needlet_windows_square_sum_to_one(windows):
    ell = torch.linspace(0, 12000, 5001, dtype=torch.float64)
    h = windows(ell)
    assert torch.allclose((h**2).sum(0), torch.ones_like(ell), atol=1e-12)
    assert float(h.min()) >= 0.0


def test_half_plane_counts_give_parseval_on_the_rfft_half_plane():
    maps = torch.randn((3, 64, 64), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    counts = half_plane_counts(PatchGeometry(64, 90.0).ell())
    power = (counts * torch.fft.rfft2(maps).abs() ** 2).sum((-2, -1))
    assert torch.allclose(power, 64**2 * (maps**2).sum((-2, -1)), rtol=1e-12)
    assert window_modes(torch.ones_like(counts)) == 64**2  # a window passing all holds every mode
    assert float(counts.sum()) == 64 * (2 * 31 + 1 + 1)  # per row 33 columns: 31 doubled, 2 single


def test_crop_and_pad_modes_round_trip_band_limited_maps(cmb):
    ell = GEOM.ell()
    limited = cmb * (ell < 1000)  # Nyquist of 128 px is 7200: 40 px keep ℓ < 2250
    small = torch.fft.irfft2(crop_modes(limited, 40), s=(40, 40))
    assert torch.allclose(pad_modes(torch.fft.rfft2(small), 128), limited, atol=1e-9 * float(cmb.abs().max()))


def test_options_and_errors():
    assert build_separator("nilc", needlets="gaussian").describe()["needlets"] == "gaussian"
    assert build_separator("hilc", covariance="batch").describe()["covariance"] == "batch"
    with pytest.raises(ValueError, match="needlets"):
        build_separator("nilc", needlets="haar")
    with pytest.raises(ValueError, match="covariance"):
        build_separator("hilc", covariance="sky")
    with pytest.raises(ValueError, match="bad options"):
        build_separator("ilc", lmax=3)
    with pytest.raises(ValueError, match="prepare"):
        WienerSeparator().separate(torch.zeros((1, 3, 64, 64)), INFO)
