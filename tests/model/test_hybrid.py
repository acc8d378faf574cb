"""Linear operations in torch (beam matching, CMB-free differences, ILC) and the hybrid networks:
the signal-preserving network passes any CMB with unit response, the ILC-informed one starts at the ILC."""

import pytest
import torch

from cenn.model import build_model
from cenn.model.linear import (
    bins_by_count,
    cmb_free_differences,
    harmonic_ilc,
    mirror_border,
    smoothing_reach_px,
)
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning
from cenn.sky.instrument import gaussian_beam_window
from cenn.sky.simulator import PatchSimulator, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

BEAMS = [7.3, 5.02, 4.94]  # Planck 143, 217, 353 GHz (arcmin)
NPIX = 64
GEOMETRY = PatchGeometry(NPIX, 90.0)


def _with_beams(sky: torch.Tensor, beams: list[float]) -> torch.Tensor:
    """``sky (N, 1, n, n)`` seen through every beam (periodic convolution): ``(N, len(beams), n, n)``."""
    ell = GEOMETRY.ell()
    fourier = torch.fft.rfft2(sky.double())
    return torch.cat([torch.fft.irfft2(fourier * gaussian_beam_window(ell, b), s=sky.shape[-2:])
                      for b in beams], dim=1).float()


def _foregrounds(seed: int) -> torch.Tensor:
    """Bright, band-dependent foregrounds with noise, µK: a dust-like map times 0.3/1/7.6 plus white noise."""
    g = torch.Generator().manual_seed(seed)
    dust = 3000.0 * torch.randn(2, 1, NPIX, NPIX, generator=g).cumsum(-1).cumsum(-2) / NPIX
    return (_with_beams(dust, BEAMS) * torch.tensor([0.3, 1.0, 7.6])[:, None, None]
            + torch.tensor([20.0, 30.0, 100.0])[:, None, None] * torch.randn(2, 3, NPIX, NPIX, generator=g))


@pytest.fixture(scope="module")
def sp_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("sp-unet", 3, beams_arcmin=BEAMS, pixel_arcsec=90.0, reference=1,
                       backbone="unet-small", backbone_params={"zero_head": False}).eval()


def test_cmb_free_differences_cancel_the_cmb_exactly():
    cmb = 100.0 * torch.randn(3, 1, NPIX, NPIX, generator=torch.Generator().manual_seed(1))
    d = cmb_free_differences(_with_beams(cmb, BEAMS), GEOMETRY.ell(), BEAMS, reference=1)
    assert d.shape == (3, 2, NPIX, NPIX)
    assert d.abs().max().item() < 1e-4 * cmb.std().item()


def test_signal_preserving_output_moves_by_exactly_the_added_cmb(sp_net):
    """Whatever the foregrounds, adding a CMB (the same map in K_CMB in every band, at each band's
    beam) changes the output by that map at the 217 GHz beam, to 1e-3 of its RMS."""
    cmb = 100.0 * torch.randn(2, 1, NPIX, NPIX, generator=torch.Generator().manual_seed(2))
    added = _with_beams(cmb, BEAMS)
    for seed in (3, 4):
        x = _foregrounds(seed)
        with torch.no_grad():
            change = sp_net(x + added) - sp_net(x)
        expected = added[:, 1:2]
        error = (change - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt()
        assert error.item() < 1e-3
        with torch.no_grad():  # and the network is not trivially the identity on the foregrounds
            assert (sp_net(x) - x[:, 1:2]).abs().max().item() > 1.0


def test_signal_preserving_output_is_exact_for_patches_cut_from_a_larger_sky():
    """Simulated patches are cut from a beam-convolved padded grid, as real patches are cut from a
    sky map: the CMB then leaks into periodic beam-matched differences near the border, and the
    mirrored border keeps the response exact there too."""
    config = SimulationConfig.from_dict({"seed": 11, "geometry": {"npix": NPIX, "margin": 32},
                                         "region": {"lat_min": 0.0, "lat_max": 5.0}})
    simulator = PatchSimulator(config)
    batch = simulator.simulate(range(3), with_components=True)
    beams = [band.beam_fwhm_arcmin for band in simulator.instrument.bands]
    torch.manual_seed(0)
    sp_net = build_model("sp-unet", 3, beams_arcmin=beams, pixel_arcsec=90.0, reference=1,
                         backbone="unet-small", backbone_params={"zero_head": False}).eval()
    cmb = batch.components["cmb"]
    leak = cmb_free_differences(cmb, GEOMETRY.ell(), beams, reference=1)
    assert leak.abs().max().item() > 1e-2 * cmb.std().item()  # without the mirror it would fail
    with torch.no_grad():
        change = sp_net(batch.inputs) - sp_net(batch.inputs - cmb)
    error = (change - batch.target).pow(2).mean().sqrt() / batch.target.pow(2).mean().sqrt()
    assert error.item() < 1e-3


def test_mirror_border_reflects_the_interior_into_the_strip():
    maps = torch.arange(100.0).reshape(1, 1, 10, 10)
    out = mirror_border(maps, 2)
    assert torch.equal(out[..., 2:-2, 2:-2], maps[..., 2:-2, 2:-2])
    assert torch.equal(out[..., 0, 2:-2], maps[..., 4, 2:-2]) and torch.equal(out[..., 1, :], out[..., 3, :])
    assert torch.equal(out[..., :, 0], out[..., :, 4]) and torch.equal(out[..., -1, :], out[..., -5, :])
    assert torch.equal(mirror_border(maps, 0), maps)
    with pytest.raises(ValueError, match="border of 4 pixels leaves too little"):
        mirror_border(maps, 4)


def test_smoothing_reach_is_five_sigma_of_the_widest_matching_kernel():
    # 143 vs 217 GHz: √(7.3² − 5.02²) = 5.30′ FWHM = 1.50 pixels of 90″ σ → 5σ = 7.5 → 8 pixels
    assert smoothing_reach_px(BEAMS, 1, 90.0) == 8
    assert smoothing_reach_px([5.0, 5.0], 0, 90.0) == 0
    assert smoothing_reach_px(BEAMS, 1, 45.0) == 16  # 15.005 rounded up


def test_signal_preserving_output_is_not_unit_response_for_a_non_cmb_sed(sp_net):
    """The property is the CMB's: a map with another SED reaches the network and moves the output
    by something else (so the test above can fail)."""
    sky = 100.0 * torch.randn(2, 1, NPIX, NPIX, generator=torch.Generator().manual_seed(5))
    extra = _with_beams(sky, BEAMS)
    extra = extra * torch.tensor([1.0, 1.0, 3.0])[:, None, None]
    x = _foregrounds(6)
    with torch.no_grad():
        change = sp_net(x + extra) - sp_net(x)
    error = (change - extra[:, 1:2]).pow(2).mean().sqrt() / extra[:, 1:2].pow(2).mean().sqrt()
    assert error.item() > 1e-2


def test_hilc_network_starts_as_the_harmonic_ilc_and_keeps_a_pure_cmb():
    torch.manual_seed(0)
    net = build_model("hilc-unet", 3, beams_arcmin=BEAMS, pixel_arcsec=90.0, reference=1,
                      backbone="unet-small", bin_modes=64).eval()
    cmb = 100.0 * torch.randn(2, 1, NPIX, NPIX, generator=torch.Generator().manual_seed(7))
    x = _with_beams(cmb, BEAMS) + _foregrounds(8)
    with torch.no_grad():
        ilc, differences = net.linear_parts(x)
        out = net(x)
    assert torch.allclose(out, ilc.float(), atol=1e-4)  # zero head: the correction starts at zero
    assert differences.shape == (2, 2, NPIX, NPIX)
    residual = (ilc.float() - _with_beams(cmb, BEAMS)[:, 1:2]).pow(2).mean().sqrt()
    assert residual.item() < 0.2 * (x[:, 1:2] - _with_beams(cmb, BEAMS)[:, 1:2]).pow(2).mean().sqrt().item()


def test_harmonic_ilc_keeps_the_cmb_and_removes_a_foreground_of_known_sed():
    bins = bins_by_count(GEOMETRY.ell(), 64)
    g = torch.Generator().manual_seed(9)
    cmb, dust = torch.randn(2, 1, NPIX, NPIX, generator=g), 10.0 * torch.randn(2, 1, NPIX, NPIX, generator=g)

    def ilc(maps: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(harmonic_ilc(torch.fft.rfft2(maps.double()), bins), s=(NPIX, NPIX))

    assert torch.allclose(ilc(cmb.expand(2, 3, NPIX, NPIX)), cmb[:, 0].double(), atol=1e-6)  # unit response
    out = ilc(cmb + dust * torch.tensor([0.3, 1.0, 7.6])[:, None, None])
    # the dust (RMS 10 in the 217 GHz band) is gone but for the ILC bias: chance CMB-dust correlations
    # over 64 modes per bin, ~0.1 of the CMB
    residual = (out - cmb[:, 0]).pow(2).mean().sqrt().item()
    assert residual < 0.25 and residual > 1e-3


def test_bins_by_count_hold_the_same_number_of_modes_at_any_patch_size():
    for npix in (32, 64, 128):
        ell = PatchGeometry(npix, 90.0).ell()
        bins = bins_by_count(ell, 100)
        counts = torch.bincount(bins)
        assert counts[:-1].eq(100).all() and 100 <= counts[-1] < 200
        flat = ell.flatten()
        highest = torch.zeros(int(bins.max()) + 1, dtype=flat.dtype).scatter_reduce(0, bins, flat, "amax")
        lowest = torch.full_like(highest, 1e9).scatter_reduce(0, bins, flat, "amin")
        assert torch.all(highest[:-1] <= lowest[1:])  # bins follow ℓ
    ell = torch.tensor([[0.0, 99.0], [100.0, 250.0]])
    binning = Binning.linear(0.0, 300.0, 100.0)
    assert torch.equal(binning.index(ell.flatten()), torch.tensor([0, 0, 1, 2]))
    assert torch.equal(binning.sums(torch.tensor([1.0, 2.0, 3.0, 4.0]), binning.index(ell.flatten())),
                       torch.tensor([3.0, 3.0, 4.0]))
    assert torch.equal(binning.index(torch.tensor([-1.0, 300.0])), torch.tensor([-1, 3]))  # outside
    with pytest.raises(ValueError, match="cannot fill a bin"):
        bins_by_count(PatchGeometry(8, 90.0).ell(), 100)


def test_hybrids_need_the_instrument():
    with pytest.raises(ValueError, match="beams_arcmin and the pixel_arcsec"):
        build_model("sp-unet", 3)
    with pytest.raises(ValueError, match="as many beams_arcmin"):
        build_model("hilc-unet", 3, beams_arcmin=[5.0, 5.0], pixel_arcsec=90.0)
