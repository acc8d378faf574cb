"""The CMB-free needlet ILC and the unbiased network built on it: border strips refilled without CMB,
exact unit response on patches cut from a larger sky, the network starting as the classical
estimate, and the estimate removing a foreground of known SED down to the noise."""

import math

import pytest
import torch

from cenn.baselines.dnilc import DifferenceNILCSeparator
from cenn.model import build_model
from cenn.model.difference_ilc import DifferenceILC
from cenn.model.linear import (
    cmb_free_border,
    cmb_free_differences,
    cmb_free_maps,
    mirror_border,
    pair_reach_px,
)
from cenn.separation import InputInfo
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import gaussian_beam_window
from cenn.sky.seds import compact_source_seds, nominal_seds
from cenn.sky.simulator import PatchSimulator, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

NPIX = 64
FREQUENCIES, NAMES = (143.0, 217.0, 353.0), ("143", "217", "353")
SEDS = nominal_seds(FREQUENCIES, NAMES, 1)
SOURCE_SEDS, INDEX_COVARIANCE = (t.tolist() for t in compact_source_seds(FREQUENCIES, NAMES, 1))


@pytest.fixture(scope="module")
def plane_batch():
    """Galactic-plane patches cut from a beam-convolved padded grid, with every component."""
    config = SimulationConfig.from_dict({"seed": 21, "geometry": {"npix": NPIX, "margin": 32},
                                         "region": {"lat_min": 0.0, "lat_max": 5.0}})
    simulator = PatchSimulator(config)
    batch = simulator.simulate(range(3), with_components=True)
    beams = [band.beam_fwhm_arcmin for band in simulator.instrument.bands]
    return batch, beams


def _info(beams: list[float]) -> InputInfo:
    return InputInfo(frequencies_ghz=FREQUENCIES, band_names=NAMES, beam_fwhm_arcmin=tuple(beams),
                     target_band="217", target_beam_fwhm_arcmin=beams[1], pixel_arcsec=90.0,
                     noise_uk_per_pixel=(20.0, 30.0, 100.0))


def test_nominal_seds_hold_no_co_at_143_and_the_documented_line_ratio():
    assert SEDS[0, 1] == 0.0
    # CO(2-1) in 217 and CO(3-2) in 353 GHz: 45.85 and 175.1 µK_CMB per K km/s (docs/sky-model.md)
    # at the nominal ratios to CO(1-0), 0.595 and 0.297
    assert float(SEDS[1, 1] / SEDS[2, 1]) == pytest.approx(45.85 * 0.595 / (175.1 * 0.297), rel=1e-3)
    assert SEDS[1, 0] == 1.0 and 0.2 < SEDS[0, 0] < 0.4 and 6.0 < SEDS[2, 0] < 10.0  # dust, K_CMB


def test_refilled_differences_hold_no_cmb_near_the_border(plane_batch):
    batch, beams = plane_batch
    ell = PatchGeometry(NPIX, 90.0).ell()
    cmb = batch.components["cmb"].double()
    raw = cmb_free_differences(cmb, ell, beams, 1)
    assert raw.abs().max().item() > 1e-2 * cmb.std().item()  # the periodic smoothing wraps the CMB in
    assert pair_reach_px(beams, 1, 90.0)[0] == 8  # the 143 pair's kernel (5.3′) reaches 8 pixels
    free = cmb_free_maps(cmb, beams, 1, 90.0)
    # the sub-pixel kernel's leak beyond its 1-pixel strip (MIN_STRIP_PX): 3.7e-3 at most, 2.1e-4 in RMS
    assert free.abs().max().item() < 5e-3 * cmb.std().item()
    assert free.pow(2).mean().sqrt().item() < 3e-4 * cmb.std().item()


def test_a_bright_gradient_continues_into_the_strip_where_a_mirror_folds_it():
    """A dust ramp seen in both differences: the wide strip of the first is refilled from the second,
    which is exact there, and keeps the ramp; a mirror would fold it back."""
    ramp = torch.linspace(0.0, 1.0e4, 40, dtype=torch.float64).expand(40, 40)
    texture = 30.0 * torch.randn(40, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    differences = torch.stack([-0.7 * ramp + texture, 6.7 * ramp])[None]
    filled = cmb_free_border(differences, [6, 1])
    error_filled = (filled[0, 0] - differences[0, 0])[:, :6].pow(2).mean().sqrt()
    error_mirror = (mirror_border(differences[0, 0], 6) - differences[0, 0])[:, :6].pow(2).mean().sqrt()
    assert error_filled < 0.05 * error_mirror
    assert torch.equal(filled[0, 0, 6:-6, 6:-6], differences[0, 0, 6:-6, 6:-6])  # the interior is kept


@pytest.mark.parametrize("bf16", [False, True])
def test_unbiased_network_moves_by_exactly_the_added_cmb_on_patches_cut_from_a_larger_sky(plane_batch, bf16):
    """Also under bfloat16 autocast (--precision auto on a CPU with AMX), where the backbone stays float32."""
    batch, beams = plane_batch
    torch.manual_seed(0)
    net = build_model("sp-nilc-unet", 3, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                      seds=SEDS.tolist(), source_seds=SOURCE_SEDS, radio_index_covariance=INDEX_COVARIANCE,
                      backbone="unet-small", backbone_params={"zero_head": False}).eval()
    cmb, sigma = batch.components["cmb"], batch.noise_sigma
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with_cmb = net(torch.cat([batch.inputs, sigma], 1))
        without = net(torch.cat([batch.inputs - cmb, sigma], 1))
    change = (with_cmb[:, :1] - without[:, :1]).double()
    target = batch.target.double()
    # float32 output: the inputs reach 10⁴ µK in the plane, so the rounding is ~10⁻³ µK
    error = (change - target).pow(2).mean().sqrt() / target.pow(2).mean().sqrt()
    assert error.item() < 1e-4
    assert (with_cmb[:, :1] - batch.inputs[:, 1:2]).abs().max().item() > 1.0  # it does remove something


def test_unbiased_network_starts_as_the_cmb_free_needlet_ilc_with_sigma_at_its_scale(plane_batch):
    batch, beams = plane_batch
    net = build_model("sp-nilc-unet", 3, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                      seds=SEDS.tolist(), source_seds=SOURCE_SEDS, radio_index_covariance=INDEX_COVARIANCE,
                      backbone="unet-small").eval()
    with torch.no_grad():
        out = net(torch.cat([batch.inputs, batch.noise_sigma], 1))
    classical = DifferenceNILCSeparator().separate(batch.inputs, _info(beams), batch.noise_sigma)
    assert torch.allclose(out[:, :1], classical, rtol=0, atol=1e-3)
    assert torch.allclose(out[:, 1:], torch.full_like(out[:, 1:], math.log(100.0)))
    # a model without source SEDs (cards written before them) starts as dnilc without compact sources
    legacy = build_model("sp-nilc-unet", 3, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                         seds=SEDS.tolist(), backbone="unet-small").eval()
    with torch.no_grad():
        out = legacy(torch.cat([batch.inputs, batch.noise_sigma], 1))
    classical = DifferenceNILCSeparator(source_threshold=0).separate(batch.inputs, _info(beams),
                                                                     batch.noise_sigma)
    assert torch.allclose(out[:, :1], classical, rtol=0, atol=1e-3)


def test_cmb_free_needlet_ilc_removes_a_foreground_of_its_sed_down_to_the_noise():
    """CMB + a bright dust-like field with exactly the nominal dust SED + white noise, on patches cut
    from a larger sky: what is left beyond the border strips is noise, at most the 217 GHz noise
    (30 µK), and over the whole patch a small fraction of the foreground."""
    big, n, beams = 96, 64, [7.3, 5.02, 4.94]
    ell = PatchGeometry(big, 90.0).ell()
    g = torch.Generator().manual_seed(4)
    dust = 2000.0 * torch.randn(4, 1, big, big, generator=g, dtype=torch.float64).cumsum(-1).cumsum(-2) / big
    cmb = 100.0 * torch.randn(4, 1, big, big, generator=g, dtype=torch.float64)
    cut = (..., slice(16, 16 + n), slice(16, 16 + n))

    def observe(sky: torch.Tensor) -> torch.Tensor:  # (N, C, n, n) through each band's beam, cut out
        windows = [gaussian_beam_window(ell, b) for b in beams]
        return torch.stack([torch.fft.irfft2(torch.fft.rfft2(sky[:, c]) * w, s=(big, big))
                            for c, w in enumerate(windows)], 1)[cut]

    foreground = observe(dust * SEDS[:, 0][None, :, None, None])
    sigma = torch.tensor([20.0, 30.0, 100.0], dtype=torch.float64)[None, :, None, None].expand(4, 3, n, n)
    x = observe(cmb.expand(4, 3, big, big)) + foreground + sigma * torch.randn(4, 3, n, n, generator=g,
                                                                               dtype=torch.float64)
    differences = cmb_free_maps(x, beams, 1, 90.0)
    predicted = DifferenceILC(beams, 90.0, 1, SEDS).foregrounds(differences, sigma**2)
    left = x[:, 1:2] - predicted - observe(cmb.expand(4, 3, big, big))[:, 1:2]
    inner = left[..., 12:-12, 12:-12]  # beyond the refilled strips' reach
    assert inner.pow(2).mean().sqrt() < 30.0
    # the whole patch, its strips included: 54 µK, 5 % (a strip refilled from a local fit is noisier
    # than from one fit per patch for this one-SED foreground, 49 µK, but follows the plane's
    # changing mix: the plane's residual fell from 264 to 240 µK)
    assert left.pow(2).mean().sqrt() < 0.06 * foreground[:, 1].pow(2).mean().sqrt()


def test_away_from_the_border_the_143_ghz_difference_separates_dust_from_co_at_high_ell():
    """Dust and CO of their nominal SEDs, white (so bright at ℓ ≈ 2000), 1 µK noise: where the
    143 GHz beam factor is below 0.5 one difference cannot tell them apart and the border prediction
    leaves 37 % of the 217 GHz foregrounds at 1700 ≤ ℓ < 2300; the interior one, keeping the 143 GHz
    difference, a quarter of that. The border is the border prediction exactly, the interior the
    interior one exactly."""
    big, n, beams = 160, 128, [7.3, 5.02, 4.94]
    ell = PatchGeometry(big, 90.0).ell()
    g = torch.Generator().manual_seed(5)
    fields = 300.0 * torch.randn(2, 2, big, big, generator=g, dtype=torch.float64)  # (N, dust/CO)
    sky = torch.einsum("ck,nkhw->nchw", SEDS, fields)
    windows = [gaussian_beam_window(ell, b) for b in beams]
    x = torch.stack([torch.fft.irfft2(torch.fft.rfft2(sky[:, c]) * w, s=(big, big))
                     for c, w in enumerate(windows)], 1)[..., 16 : 16 + n, 16 : 16 + n]
    sigma = torch.ones_like(x)
    x = x + torch.randn(x.shape, generator=g, dtype=torch.float64)
    method = DifferenceILC(beams, 90.0, 1, SEDS)
    differences = cmb_free_maps(x, beams, 1, 90.0)
    both = method.foregrounds(differences, sigma**2)
    border = method.predict(differences, sigma**2, method.border)
    interior = method.predict(differences, sigma**2, method.interior)
    edge, inner = method.border_px, method.border_px + method.ramp_px
    assert torch.equal(both[..., :edge, :], border[..., :edge, :])
    assert torch.equal(both[..., inner:-inner, inner:-inner], interior[..., inner:-inner, inner:-inner])
    patch_ell = PatchGeometry(n, 90.0).ell()
    high = ((patch_ell >= 1700) & (patch_ell < 2300)).to(torch.float64)

    def high_ell_rms(residual: torch.Tensor) -> float:  # the 1700 ≤ ℓ < 2300 part, in the interior
        band = torch.fft.irfft2(torch.fft.rfft2(residual[:, 0]) * high, s=(n, n))
        return float(band[..., inner:-inner, inner:-inner].pow(2).mean().sqrt())

    left_border, left_both = high_ell_rms(x[:, 1:2] - border), high_ell_rms(x[:, 1:2] - both)
    assert left_border > 0.3 * high_ell_rms(x[:, 1:2])  # 10.6 of 28.8 µK
    assert left_both < 0.35 * left_border  # 2.7 µK


@pytest.mark.parametrize("bad", [{"interior_min_beam_factor": -0.1}, {"interior_max_gain": -1.0},
                                 {"border_px": -1}, {"ramp_px": -2}])
def test_negative_border_and_interior_settings_are_refused(bad):
    with pytest.raises(ValueError, match="must be >= 0"):
        DifferenceILC([7.3, 5.02, 4.94], 90.0, 1, SEDS, **bad)


def _as_qu(maps: torch.Tensor) -> torch.Tensor:
    """Patches 0 and 1 of ``maps (3, C, n, n)`` as the Q and U of one patch, ``(1, 2C, n, n)`` (the
    bands' Q then U)."""
    return maps[:2].reshape(1, -1, *maps.shape[2:])


def test_unbiased_qu_network_moves_each_stokes_map_by_exactly_its_added_cmb(plane_batch):
    """Two plane patches as the Q and U of one: the Q output moves by the CMB added to the Q maps, the U
    output by that added to the U maps, with a trained-like (non-zero) head."""
    batch, beams = plane_batch
    torch.manual_seed(1)
    net = build_model("sp-nilc-unet", 6, out_channels=2, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                      seds=SEDS.tolist(), backbone="unet-small", backbone_params={"zero_head": False}).eval()
    sigma = _as_qu(batch.noise_sigma)
    with torch.no_grad():
        with_cmb = net(torch.cat([_as_qu(batch.inputs), sigma], 1))
        without = net(torch.cat([_as_qu(batch.inputs - batch.components["cmb"]), sigma], 1))
    assert with_cmb.shape == (1, 4, NPIX, NPIX)
    change, target = (with_cmb[0, :2] - without[0, :2]).double(), batch.target[:2, 0].double()
    error = (change - target).pow(2).mean((1, 2)).sqrt() / target.pow(2).mean((1, 2)).sqrt()
    assert error.max().item() < 1e-4
    # Q and U are not mixed up: Q moved by patch 0's CMB, not patch 1's
    assert (change[0] - batch.target[1, 0]).abs().mean() > 10 * (change[0] - target[0]).abs().mean()


def test_unbiased_qu_network_starts_as_the_cmb_free_needlet_ilc_on_q_and_on_u(plane_batch):
    batch, beams = plane_batch
    net = build_model("sp-nilc-unet", 6, out_channels=2, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                      seds=SEDS.tolist(), backbone="unet-small").eval()
    with torch.no_grad():
        out = net(torch.cat([_as_qu(batch.inputs), _as_qu(batch.noise_sigma)], 1))
    polarization, sigma = batch.inputs[None, :2], batch.noise_sigma[None, :2]  # (1, 2, C, n, n)
    classical = DifferenceNILCSeparator().separate_polarization(polarization, _info(beams), sigma)
    assert torch.allclose(out[:, :2], classical, rtol=0, atol=1e-3)
    assert torch.allclose(out[:, 2:], torch.full_like(out[:, 2:], math.log(100.0)))


@pytest.mark.parametrize("maps", [3, 5])
def test_unbiased_network_refuses_a_stokes_count_it_cannot_separate(maps):
    with pytest.raises(ValueError, match="out_channels"):
        build_model("sp-nilc-unet", 6, out_channels=maps, beams_arcmin=[7.22, 4.9, 4.92], pixel_arcsec=90.0,
                    reference=1, seds=SEDS.tolist(), backbone="unet-small")
