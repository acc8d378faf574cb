import math

import pytest
import torch

from cenn.sky import units
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import load_instrument, preset_names


def test_planck_preset_beams_and_noise():
    inst = load_instrument("planck_hfi")
    assert inst.band_names == ["143", "217", "353"]
    assert [b.beam_fwhm_arcmin for b in inst.bands] == [7.22, 4.90, 4.92]
    noise = inst.noise_uk_per_pixel(PatchGeometry())
    assert noise == pytest.approx([22.0, 31.2, 102.4], rel=1e-3)
    assert inst.with_noise_scale(5.0).noise_uk_per_pixel(PatchGeometry())[0] == pytest.approx(110.0)
    assert inst.target.name == "217"
    # beam solid angle 2πσ² (physics-reference §1.1)
    assert inst.bands[0].beam_solid_angle_sr == pytest.approx(4.998e-6, rel=1e-3)


def test_beam_window_half_power():
    b = load_instrument("planck_hfi").bands[1]
    sigma = b.beam_sigma_rad
    ell = torch.tensor([0.0, 1.0 / sigma], dtype=torch.float64)
    w = b.beam_window(ell)
    assert w[0] == 1.0
    assert w[1].item() == pytest.approx(math.exp(-0.5 * (1 + sigma)), rel=1e-9)
    # FWHM 4.90 arcmin: sigma = 2.0808 arcmin
    assert sigma * 180 / math.pi * 60 == pytest.approx(2.0808, rel=1e-4)


def test_user_instrument_from_file_sets_channels(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\ntarget_band = "150"\n'
        '[[bands]]\nname = "95"\nfrequency_ghz = 95.0\nbeam_fwhm_arcmin = 2.2\nnoise_uk_deg = 0.1\n'
        '[[bands]]\nname = "150"\nfrequency_ghz = 150.0\nbeam_fwhm_arcmin = 1.4\nnoise_uk_deg = 0.2\n'
    )
    inst = load_instrument(path)
    assert inst.n_bands == 2
    # no published band average given: the monochromatic dB/dT is used
    assert inst.bands[0].mjysr_per_kcmb == pytest.approx(units.dbdt_mjysr_per_k(95.0))
    assert inst.bands[1].tsz_kcmb_per_y == pytest.approx(units.tsz_f(150.0) * units.T_CMB)


def test_presets_listed_and_bad_input_refused(tmp_path):
    assert {"planck_hfi", "planck_hfi_2015"} <= set(preset_names())
    with pytest.raises(FileNotFoundError, match="preset"):
        load_instrument("no_such_instrument")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[bands]]\nfrequency_ghz = 100.0\nbeam_fwhm_arcmin = 5.0\nnoise_uk_deg = 1.0\n'
                   'colour = "red"\n')
    with pytest.raises(ValueError, match="colour"):
        load_instrument(bad)
    unordered = tmp_path / "unordered.toml"
    unordered.write_text(
        '[[bands]]\nfrequency_ghz = 200.0\nbeam_fwhm_arcmin = 5.0\nnoise_uk_deg = 1.0\n'
        '[[bands]]\nfrequency_ghz = 100.0\nbeam_fwhm_arcmin = 5.0\nnoise_uk_deg = 1.0\n')
    with pytest.raises(ValueError, match="increasing"):
        load_instrument(unordered)
