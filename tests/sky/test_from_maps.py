"""Sky components cut from HEALPix maps: values, bands, units, beams, provenance and bad maps."""

import os

import healpy as hp
import numpy as np
import pytest
import torch

from cenn.config import ConfigError
from cenn.sky.components import COMPONENTS
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.flat.spectra import Binning, SpectrumEstimator
from cenn.sky.simulator import PatchSimulator, SimulationConfig

NSIDE = 256
GEOMETRY = {"npix": 32, "pixel_arcsec": 360.0, "margin": 16}
DIPOLE_UK = 300.0


def dipole(lon_deg: np.ndarray, lat_deg: np.ndarray, axis=(0.3, -0.5, 0.81)) -> np.ndarray:
    """A dipole of amplitude DIPOLE_UK (µK) along ``axis``: smooth, so beams leave it unchanged."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    v = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    return DIPOLE_UK * v @ (np.asarray(axis) / np.linalg.norm(axis))


def dipole_map(nside: int = NSIDE) -> np.ndarray:
    theta, phi = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    return dipole(np.degrees(phi), 90.0 - np.degrees(theta))


def write(path, values, unit="uK_CMB", nest=False):
    values = hp.reorder(values, r2n=True) if nest else values
    hp.write_map(path, values, nest=nest, column_units=unit, dtype=np.float64, overwrite=True)
    return str(path)


def only(components: dict, seed: int = 1, **region) -> SimulationConfig:
    """Every component switched off but ``components``; no noise."""
    table = {name: {"enabled": False} for name in COMPONENTS}
    table.update(components)
    return SimulationConfig.from_dict({"seed": seed, "geometry": GEOMETRY, "instrument": {"noise_scale": 0.0},
                                       "components": table, "region": region})


def test_cmb_from_a_map_is_the_map_at_the_patch_pixels(tmp_path):
    """A dipole in K_CMB, stored NESTED: the target and every band equal the dipole at the pixel
    centres within 0.1 % of its amplitude (bilinear interpolation, beams negligible at ℓ = 1)."""
    path = write(tmp_path / "cmb.fits", dipole_map() * 1e-6, unit="K_CMB", nest=True)
    sim = PatchSimulator(only({"cmb": {"maps": path}}))
    batch = sim.simulate(range(6))
    lon, lat = pixel_coordinates(batch.lon, batch.lat, sim.geometry)
    expected = torch.from_numpy(dipole(lon.numpy(), lat.numpy())).float()
    assert torch.allclose(batch.target[:, 0], expected, atol=1e-3 * DIPOLE_UK)
    for band in range(3):
        assert torch.allclose(batch.inputs[:, band], expected, atol=1e-3 * DIPOLE_UK)


def test_maps_per_band_keep_their_amplitudes_and_the_rest_stays_procedural(tmp_path):
    """Dust given at each band (0.1, 1 and 7 × a dipole) with the simulated CMB on top: the stored
    dust component of each band is its own map, and the inputs are CMB + dust."""
    factors = {"143": 0.1, "217": 1.0, "353": 7.0}
    maps = {band: write(tmp_path / f"dust_{band}.fits", f * dipole_map()) for band, f in factors.items()}
    sim = PatchSimulator(only({"dust": {"maps": maps}, "cmb": {}}))
    batch = sim.simulate(range(4), with_components=True)
    lon, lat = pixel_coordinates(batch.lon, batch.lat, sim.geometry)
    expected = torch.from_numpy(dipole(lon.numpy(), lat.numpy())).float()
    for band, f in enumerate(factors.values()):
        assert torch.allclose(batch.components["dust"][:, band], f * expected, atol=7e-3 * DIPOLE_UK)
    assert torch.allclose(batch.inputs, batch.components["dust"] + batch.components["cmb"], atol=1e-2)
    assert batch.components["cmb"].std() > 10.0


def test_the_beam_already_in_the_maps_is_not_applied_twice(tmp_path):
    """A white-noise map read as carrying a 4′ beam gets only the rest of each band's beam: its
    spectrum over the spectrum of the same map read unbeamed is 1/B_4′(ℓ)² within 5 % per bin up to
    ℓ = 2100 (above, the map's aliased power beyond its resolution dominates)."""
    nside = 1024
    sky = np.random.default_rng(0).normal(0.0, 100.0, hp.nside2npix(nside))
    path = write(tmp_path / "noise_map.fits", sky)
    geometry = {"npix": 64, "pixel_arcsec": 120.0, "margin": 16}
    spectra = {}
    for beam in (0.0, 4.0):
        config = only({"cmb": {"maps": path, "beam_fwhm_arcmin": beam}})
        config.geometry.npix, config.geometry.pixel_arcsec = geometry["npix"], geometry["pixel_arcsec"]
        sim = PatchSimulator(config)
        target = sim.simulate(range(32)).target[:, 0]
        estimator = SpectrumEstimator(sim.geometry, Binning.linear(300, 2100, 300))
        spectra[beam] = estimator.binned(estimator.fourier(target)).mean(0)
    ell = torch.as_tensor(estimator.binning.centres)
    sigma = np.radians(4.0 / 60.0) / np.sqrt(8 * np.log(2))
    expected = torch.exp(ell * (ell + 1) * sigma**2)
    assert torch.allclose(spectra[4.0] / spectra[0.0], expected.to(spectra[0.0]), rtol=0.05)


def test_beam_windows_remove_exactly_the_beam_in_the_maps():
    sim = PatchSimulator(SimulationConfig.from_dict({"geometry": GEOMETRY}))
    full, target_full = sim.beam_windows(0.0)
    rest, target_rest = sim.beam_windows(3.0)
    ell = sim.grid.ell(sim.device)
    sigma = np.radians(3.0 / 60.0) / np.sqrt(8 * np.log(2))
    applied = torch.exp(-0.5 * ell * (ell + 1) * sigma**2).float()
    assert torch.allclose(rest * applied, full, rtol=1e-5, atol=1e-30)
    assert torch.allclose(target_rest * applied, target_full, rtol=1e-5, atol=1e-30)
    with pytest.raises(ValueError, match="cannot be sharpened"):
        sim.beam_windows(5.5)  # wider than the 353 GHz beam (4.94′)


def test_provenance_records_the_files_and_refuses_a_changed_one(tmp_path):
    path = write(tmp_path / "cmb.fits", dipole_map())
    saved = only({"cmb": {"maps": path}}).to_dict()
    resolved = saved["components"]["cmb"]
    assert resolved["maps"] == path and len(resolved["sha256"][path]) == 64
    write(tmp_path / "cmb.fits", 2.0 * dipole_map())
    later = os.stat(path).st_mtime_ns + 10**9  # a second later: the file's time always moves on
    os.utime(path, ns=(later, later))
    with pytest.raises(ConfigError, match="has changed since"):
        SimulationConfig.from_dict(saved).resolved_components()


def test_relative_paths_are_taken_from_the_configuration_file(tmp_path, monkeypatch):
    (tmp_path / "maps").mkdir()
    write(tmp_path / "maps" / "cmb.fits", dipole_map())
    (tmp_path / "sim.toml").write_text('[components.cmb]\nmaps = "maps/cmb.fits"\n')
    monkeypatch.chdir(tmp_path / "maps")  # elsewhere than the file's folder
    resolved = SimulationConfig.load(tmp_path / "sim.toml").to_dict()["components"]["cmb"]
    assert resolved["maps"] == str(tmp_path / "maps" / "cmb.fits")


@pytest.mark.parametrize(("params", "error", "match"), [
    ({"maps": "missing.fits"}, FileNotFoundError, "not found"),
    ({"maps": "MAP", "interpolation": "cubic"}, ValueError, "unknown interpolation"),
    ({"maps": "MAP", "beam_fwhm_arcmin": -1.0}, ValueError, ">= 0"),
    ({"maps": "MAP", "colour": "red"}, ValueError, "unknown parameters"),
    ({"maps": {"143": "MAP", "217": "MAP"}}, ValueError, "one map per band"),
    ({"maps": "MAP", "units": "K_RJ"}, ValueError, "unknown map units"),
    ({"maps": "MAP", "units": "K_CMB"}, ValueError, "looks like uK_CMB but is labelled K_CMB"),
    ({"maps": "MAP", "units": "mK_CMB"}, ValueError,
     r"cmb: .*cmb\.fits looks like uK_CMB but is labelled mK_CMB: it varies by 1\.\d+e\+05 µK .*where CMB "
     r"maps vary by at most 2\.7e\+03 µK; set its TUNIT1 to uK_CMB, or units = 'uK_CMB' in "
     r"\[components\.cmb\]"),
])
def test_bad_map_configurations_are_refused(tmp_path, params, error, match):
    path = write(tmp_path / "cmb.fits", dipole_map())
    params = {k: ({b: path for b in v} if isinstance(v, dict) else path if v == "MAP" else v)
              for k, v in params.items()}
    with pytest.raises((error, ConfigError), match=match):
        PatchSimulator(only({"cmb": params}))


def test_patches_touching_unseen_pixels_are_refused(tmp_path):
    sky = dipole_map()
    sky[hp.query_strip(NSIDE, 0.0, np.radians(100.0))] = hp.UNSEEN  # all but the far south
    path = write(tmp_path / "cmb.fits", sky)
    with pytest.warns(UserWarning, match="UNSEEN"):
        sim = PatchSimulator(only({"cmb": {"maps": path}}))
    with pytest.raises(ValueError, match="touches UNSEEN pixels"):
        sim.simulate(range(4))
