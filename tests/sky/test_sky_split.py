"""Training and validation sets separable by sky position and by CMB realisation."""

import dataclasses
import subprocess
import sys

import healpy as hp
import numpy as np
import pytest

from cenn.config import ConfigError
from cenn.data.store import DatasetStore
from cenn.sky.components import COMPONENTS
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import draw_centres
from cenn.sky.rng import SampleRandom
from cenn.sky.simulator import SimulationConfig
from cenn.sky.sky_split import SkySplit, inside_part, overlapping_pairs, patch_radius_rad, shared_sky
from cenn.train import TrainConfig
from cenn.train.data import stream_simulation

GEOMETRY = PatchGeometry(256, 90.0)  # the paper's 6.4° patches


def centres(n: int, seed: int, split: SkySplit | None, band=(0.0, 90.0)) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = draw_centres(SampleRandom(seed, range(n)), *band, split, GEOMETRY)
    return lon.numpy(), lat.numpy()


def test_complementary_parts_never_overlap_and_unsplit_sets_do():
    split = SkySplit(part="train", validation_fraction=0.25, nside=4, seed=3)
    train = centres(400, 1, split)
    validation = centres(200, 2, dataclasses.replace(split, part="validation"))
    assert len(overlapping_pairs(*train, *validation, GEOMETRY)) == 0
    assert inside_part(*train, split, GEOMETRY).all()
    assert not inside_part(*validation, split, GEOMETRY).any()
    # the same numbers of patches drawn without a split overlap many times
    assert len(overlapping_pairs(*centres(400, 1, None), *centres(200, 2, None), GEOMETRY)) > 20


def test_overlap_test_is_the_patch_diagonal():
    """Two patches overlap when their centres are closer than twice the half diagonal (4.53° for
    256 × 90″), the conservative bound used for the split."""
    radius = np.degrees(patch_radius_rad(GEOMETRY))
    assert radius == pytest.approx(np.degrees(np.arctan(np.sqrt(2) * 128 * np.radians(90 / 3600))))
    assert radius == pytest.approx(4.52, abs=0.01)
    near = overlapping_pairs(np.array([10.0]), np.array([0.0]), np.array([10.0 + 1.99 * radius]),
                             np.array([0.0]), GEOMETRY)
    far = overlapping_pairs(np.array([10.0]), np.array([0.0]), np.array([10.0 + 2.01 * radius]),
                            np.array([0.0]), GEOMETRY)
    assert near.tolist() == [[0, 0]] and far.size == 0


def test_split_respects_the_latitude_band_and_is_reproducible():
    split = SkySplit(part="validation")
    lon, lat = centres(64, 5, split, band=(5.0, 30.0))
    assert ((np.abs(lat) >= 5.0) & (np.abs(lat) <= 30.0)).all()
    again = centres(64, 5, split, band=(5.0, 30.0))
    np.testing.assert_array_equal(lon, again[0])


def test_held_out_cells_follow_the_fraction_and_the_seed():
    split = SkySplit(validation_fraction=0.2, nside=4, seed=0)
    held = split.validation_cells()
    assert held.sum() == round(0.2 * hp.nside2npix(4))
    assert not (held & split.own_cells()).any()
    assert (held != SkySplit(validation_fraction=0.2, nside=4, seed=1).validation_cells()).any()


def test_a_split_that_cannot_hold_a_patch_is_refused():
    """Cells of 0.9° (Nside 64) cannot hold a 4.5°-radius patch in the small validation part."""
    with pytest.raises(ValueError, match="lower nside"):
        centres(2, 0, SkySplit(part="validation", validation_fraction=0.05, nside=64))


@pytest.mark.parametrize(("split", "match"), [
    ({"part": "test"}, "part must be one of"),
    ({"validation_fraction": 1.0}, r"in \(0, 1\)"),
    ({"nside": 3}, "power of 2"),
    ({"parts": "train"}, "unknown key"),
])
def test_bad_split_configurations_are_refused(split, match):
    with pytest.raises(ConfigError, match=match):
        SimulationConfig.from_dict({"region": {"sky_split": split}})


def _maps_config(cmb_sha: str, part: str | None) -> dict:
    split = {"sky_split": {"part": part, "validation_fraction": 0.2, "nside": 4, "seed": 0}} if part else {}
    return {"region": split, "components": {"cmb": {"enabled": True, "sha256": {"cmb.fits": cmb_sha}}}}


def test_shared_sky_names_maps_used_by_both_sets_unless_the_sky_is_split():
    assert shared_sky(_maps_config("aa", None), _maps_config("bb", None)) == []
    problems = shared_sky(_maps_config("aa", None), _maps_config("aa", None))
    assert len(problems) == 1 and problems[0].startswith("cmb is cut from the same map")
    assert shared_sky(_maps_config("aa", "train"), _maps_config("aa", "validation")) == []
    assert shared_sky(_maps_config("aa", "train"), _maps_config("aa", "train")) != []


def test_streamed_training_avoids_the_validation_part_of_the_sky():
    val = SimulationConfig.from_dict({"seed": 3, "region": {"sky_split": {"part": "validation"}}})
    cfg = TrainConfig.from_dict({"data": {"stream": True, "val": "val.zarr"}})
    stream = stream_simulation(cfg, {"config": val.to_dict(), "seed": 3})
    assert stream.region.sky_split.part == "train" and stream.seed != 3
    assert stream.region.sky_split.nside == val.region.sky_split.nside


def _cmb_map(path, seed: int) -> str:
    """A stand-in CMB realisation at Nside 64 (white, 100 µK per pixel), one per seed."""
    sky = np.random.default_rng(seed).normal(0.0, 100.0, hp.nside2npix(64))
    hp.write_map(path, sky, column_units="uK_CMB", dtype=np.float64, overwrite=True)
    return str(path)


def test_cli_builds_train_and_validation_sets_separable_by_realisation_and_position(tmp_path):
    """``cenn simulate --map cmb=... --sky-split``: two stores with different CMB maps on two parts of
    the sky: no shared maps, no overlapping patches, the maps' checksums in the stores."""
    off = [arg for name in COMPONENTS if name != "cmb" for arg in ("--disable", name)]
    common = ["--npix", "16", "--pixel-arcsec", "1440", "--no-progress", *off]
    for name, seed, part in (("train", 1, "train"), ("val", 2, "validation")):
        cmb = _cmb_map(tmp_path / f"cmb_{name}.fits", seed)
        subprocess.run([sys.executable, "-m", "cenn", "simulate", str(tmp_path / f"{name}.zarr"), "-n", "24",
                        "--seed", str(seed), "--map", f"cmb={cmb}", "--sky-split", part, *common], check=True)
    train, val = (DatasetStore.open(tmp_path / f"{n}.zarr") for n in ("train", "val"))
    assert train.complete and val.complete
    assert shared_sky(train.meta["config"], val.meta["config"]) == []
    val_cmb = val.meta["config"]["components"]["cmb"]
    assert val_cmb["maps"].endswith("cmb_val.fits") and len(next(iter(val_cmb["sha256"].values()))) == 64
    geometry = PatchGeometry(16, 1440.0)
    lon_lat = [store.array(name)[:] for store in (train, val) for name in ("lon", "lat")]
    pairs = overlapping_pairs(*lon_lat, geometry)
    assert len(pairs) == 0
