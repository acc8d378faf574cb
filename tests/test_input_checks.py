"""Inputs checked for consistency before any work (issue 26): a unit label the maps' spread
contradicts, full-sky bands in different coordinate systems, maps far coarser than the patches,
runs that would export an untrained network, training and validation stores that disagree, options
that only work with another, and impossible numbers. Each refusal is one line naming the problem and
the fix, with exit status 2, and nothing is written."""

import json
import re

import healpy as hp
import numpy as np
import pytest
import torch
import zarr
from astropy.io import fits
from safetensors import safe_open
from safetensors.torch import save_file

from cenn.checksums import edited_fields, fields_sha256
from cenn.cli import main
from cenn.data.simulate import simulate
from cenn.data.store import ATTRS_SHA256, DatasetStore, StoreError
from cenn.evaluate.run import weights_method
from cenn.healpix import command
from cenn.healpix.command import card_info
from cenn.healpix.reproject import full_sky_maps
from cenn.healpix.resolution import check_map_resolution
from cenn.io.healpix_maps import check_bands, read_map
from cenn.io.units import check_unit_label, plausible_spread
from cenn.model.weights import CARD_SHA256, export_weights, load_weights
from cenn.predict import Predictor
from cenn.pretrained import shipped_weights
from cenn.separators import NetworkSeparator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.simulator import GeometryConfig, SimulationConfig

pytestmark = pytest.mark.usefixtures("one_thread")

FREQS = [143.0, 217.0, 353.0]
META = {"frequencies_ghz": FREQS, "pixel_arcsec": 90.0}


def _refused(argv: list, capsys, command_name: str) -> str:
    """Run ``cenn`` expecting exit 2 and one line of error (no traceback); returns it."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cenn {command_name}: error: ") and err.count("\n") == 1, err
    return err


def _healpix(path, values, units="uK_CMB", **header) -> str:
    """A RING HEALPix FITS map with ``units`` and extra header keys."""
    hp.write_map(path, values, column_units=units, dtype=np.float64, extra_header=list(header.items()))
    return str(path)


def _sky(nside: int, std_uk: float = 100.0, seed: int = 0) -> np.ndarray:
    return std_uk * np.random.default_rng(seed).standard_normal(hp.nside2npix(nside))


def _ilc(paths: list[str], out, nside: int) -> list:
    """``cenn predict --maps`` with the ILC on patches of 0.8 map pixels, frequencies stated."""
    pixel = hp.nside2resol(nside, arcmin=True) * 60 * 0.8
    return ["predict", "--maps", *paths, "--out", out, "--method", "ilc", "--npix", "16", "--pixel-arcsec",
            f"{pixel:.3f}", "--frequencies", "143,217,353", "--no-progress"]


# --- 1. a unit label contradicted by the maps' spread ----------------------------------------------

def test_the_criterion_at_each_frequency():
    """Converted from mK or K, a map may vary up to 30 times the typical sky at its frequency; a 1e3
    error lands above that for any sky varying by more than 16 µK at 143 GHz (47 µK at 217 GHz)."""
    bounds = {f: plausible_spread("mK_CMB", f)[1] for f in FREQS}
    assert bounds[143.0] == pytest.approx(1.52e4, rel=0.01)
    assert bounds[217.0] == pytest.approx(4.66e4, rel=0.01)
    assert bounds[353.0] == pytest.approx(3.51e5, rel=0.01)
    assert 1e3 * 16 > bounds[143.0] and 1e3 * 47 > bounds[217.0]  # a µK sky's least spread, labelled mK
    assert plausible_spread("mK_CMB", 217.0, bright_plane=False)[1] == pytest.approx(3.46e3, rel=0.01)
    assert plausible_spread("uK_CMB", 217.0) == (10.0, 1e7)  # a µK label: bright, not mislabelled
    assert plausible_spread("mK_CMB", 30.0) == (10.0, 1e7)  # synchrotron and free-free: no bound
    words = (r"^143\.fits looks like uK_CMB but is labelled mK_CMB: it varies by 1e\+05 µK after "
             r"conversion from mK_CMB \(x\), where sky maps at 143 GHz vary by at most 1\.52e\+04 µK; fix "
             r"it, or multiply it by 1e-3; if it really is in mK_CMB \(the brightest Galactic regions\), "
             r"convert it to uK_CMB and label it so$")
    with pytest.raises(ValueError, match=words):
        check_unit_label(1e5, "mK_CMB", subject="143.fits", measured="it varies", statistic="x",
                         relabel="fix it", plural=False, frequency_ghz=143.0)


def test_patches_in_uk_labelled_mk_are_refused(tiny_weights, tmp_path, capsys):
    weights = tiny_weights(tmp_path / "w.safetensors")
    predictor = Predictor(weights)
    rng = np.random.default_rng(0)
    sky = (100 * rng.standard_normal((3, 3, 64, 64))).astype(np.float32)  # a high-latitude sky, in µK
    words = (r"the inputs look like uK_CMB but are labelled mK_CMB: the 217 GHz maps vary by [\d.]+e\+05 "
             r"µK after conversion from mK_CMB \(median per-patch standard deviation\), where sky maps at "
             r"217 GHz vary by at most 4\.66e\+04 µK; label them uK_CMB \(--units uK_CMB\), or multiply "
             r"them by 1e-3")
    with pytest.raises(ValueError, match=words):
        predictor.predict(sky, **META, units="mK_CMB")
    faint = (40 * rng.standard_normal((3, 3, 64, 64))).astype(np.float32)  # 4e4 µK at 217 GHz: plausible
    words = r"look like uK_CMB but are labelled mK_CMB: the 143 GHz maps vary by [\d.]+e\+04 µK"
    with pytest.raises(ValueError, match=words):  # the least dusty band tells
        predictor.predict(faint, **META, units="mK_CMB")
    plane = (np.array([0.46, 1.55, 11.9], np.float32)[None, :, None, None]
             * rng.standard_normal((3, 3, 64, 64)).astype(np.float32))  # the Galactic plane, in mK
    assert predictor.predict(plane, **META, units="mK_CMB").shape == (3, 1, 64, 64)
    # the command line: a FITS cube whose BUNIT says mK_CMB, and a .npy with --units mK_CMB
    cube = fits.PrimaryHDU(sky)
    cube.header.update({"FREQ1": 143.0, "FREQ2": 217.0, "FREQ3": 353.0, "PIXSIZE": 90.0, "BUNIT": "mK_CMB"})
    cube.writeto(tmp_path / "in.fits")
    err = _refused(["predict", "--weights", weights, tmp_path / "in.fits", tmp_path / "cmb.npy"], capsys,
                   "predict")
    assert "look like uK_CMB but are labelled mK_CMB" in err and "(--units uK_CMB)" in err
    np.save(tmp_path / "in.npy", sky)
    err = _refused(["predict", "--weights", weights, tmp_path / "in.npy", tmp_path / "cmb.npy",
                    "--frequencies", "143,217,353", "--pixel-arcsec", "90", "--units", "mK_CMB"], capsys,
                   "predict")
    assert "look like uK_CMB but are labelled mK_CMB" in err
    assert not (tmp_path / "cmb.npy").exists()


def test_full_sky_bands_in_uk_labelled_mk_are_refused_before_any_work(tmp_path, capsys):
    nside = 16
    paths = [_healpix(tmp_path / f"{f}.fits", _sky(nside, seed=i), "mK_CMB" if f == 217 else "uK_CMB")
             for i, f in enumerate((143, 217, 353))]
    err = _refused(_ilc(paths, tmp_path / "x.fits", nside), capsys, "predict")
    words = (r"217\.fits looks like uK_CMB but is labelled mK_CMB: it varies by [\d.]+e\+05 µK after "
             r"conversion from mK_CMB \(robust standard deviation of its seen pixels\), where sky maps at "
             r"217 GHz vary by at most 3\.46e\+03 µK; label it uK_CMB \(TUNIT1, or --units uK_CMB if all "
             r"maps are\)")
    assert re.search(words, err), err
    assert not (tmp_path / "x.fits").exists()
    # Planck's own layout: K_CMB, correctly labelled, passes
    m = read_map(_healpix(tmp_path / "k.fits", _sky(nside) * 1e-6, "K_CMB"))
    assert command.check_sky_spread(m, 217.0) == pytest.approx(100.0, rel=0.1)


def test_simulate_map_in_uk_labelled_mk_is_refused_before_the_store(tmp_path, capsys):
    cmb = _healpix(tmp_path / "cmb.fits", _sky(32), "mK_CMB")
    out = tmp_path / "x.zarr"
    err = _refused(["simulate", out, "-n", "1", "--npix", "32", "--map", f"cmb={cmb}", "--no-progress"],
                   capsys, "simulate")
    words = (r"cmb: .*cmb\.fits looks like uK_CMB but is labelled mK_CMB: it varies by [\d.]+e\+0[45] µK "
             r".*where CMB maps vary by at most 2\.7e\+03 µK; set its TUNIT1 to uK_CMB, or units = "
             r"'uK_CMB' in \[components\.cmb\]")
    assert re.search(words, err), err
    dust = {f: _healpix(tmp_path / f"dust{f}.fits", _sky(32, 1e3), "mK_CMB" if f == 143 else "uK_CMB")
            for f in (143, 217, 353)}
    maps = [a for f, p in dust.items() for a in ("--map", f"dust:{f}={p}")]
    err = _refused(["simulate", out, "-n", "1", "--npix", "32", *maps, "--no-progress"], capsys, "simulate")
    assert "dust143.fits looks like uK_CMB but is labelled mK_CMB" in err
    assert "where maps of any sky component at 143 GHz vary by at most 1.52e+04 µK" in err
    assert not out.exists()


# --- 2. coordinate systems of full-sky bands --------------------------------------------------------

def test_bands_in_different_coordinate_systems_are_refused(tmp_path, capsys):
    sky = _sky(16)
    a = read_map(_healpix(tmp_path / "a.fits", sky, COORDSYS="GALACTIC"))
    b = read_map(_healpix(tmp_path / "b.fits", sky, COORDSYS="C"))
    c = read_map(_healpix(tmp_path / "c.fits", sky))
    assert (a.coordsys, b.coordsys, c.coordsys) == ("G", "C", None)
    words = (r"bands are in different coordinate systems \(COORDSYS: a\.fits: G, b\.fits: C\); their "
             r"pixels would be combined as if they were the same sky: rotate them to one system")
    with pytest.raises(ValueError, match=words):
        check_bands([a, b])
    with pytest.raises(ValueError, match=r"a\.fits: G, c\.fits: none stated.*add the COORDSYS a header"):
        check_bands([a, c])
    with pytest.raises(ValueError, match=r"unknown COORDSYS 'X'; expected G \(Galactic\), C \(celestial\)"):
        read_map(_healpix(tmp_path / "x.fits", sky, COORDSYS="X"))
    paths = [str(tmp_path / n) for n in ("a.fits", "b.fits", "a.fits")]
    err = _refused(_ilc(paths, tmp_path / "out.fits", 16), capsys, "predict")
    assert "different coordinate systems (COORDSYS: a.fits: G, b.fits: C, a.fits: G)" in err
    assert not (tmp_path / "out.fits").exists()


def test_the_coordinate_system_is_written_to_every_output(tmp_path, tiny_sigma_weights):
    nside = 32
    weights = tiny_sigma_weights(tmp_path / "w.safetensors", npix=32,
                                 pixel_arcsec=hp.nside2resol(nside, arcmin=True) * 48)
    paths = [_healpix(tmp_path / f"{f}.fits", _sky(nside, seed=f), COORDSYS="G", FREQ=f)
             for f in (143, 217, 353)]
    out, mask = tmp_path / "cmb.fits", tmp_path / "mask.fits"
    with pytest.warns(UserWarning, match="no II_COV"):
        assert main(["predict", "--maps", *paths, "--out", str(out), "--weights", str(weights),
                     "--mask-above", "1e9", "--mask", str(mask), "--no-progress"]) == 0
    assert fits.getheader(out, 1)["COORDSYS"] == "G" and fits.getheader(out, 1)["TTYPE3"] == "SIGMA"
    assert fits.getheader(mask, 1)["COORDSYS"] == "G"


# --- 3. maps far coarser than the patches -----------------------------------------------------------

def test_maps_far_coarser_than_the_network_pixels_are_refused(tmp_path, tiny_weights, capsys):
    weights = tiny_weights(tmp_path / "w.safetensors")  # 90″ pixels
    for nside in (16, 64):
        paths = [_healpix(tmp_path / f"{nside}-{f}.fits", _sky(nside), FREQ=f) for f in (143, 217, 353)]
        err = _refused(["predict", "--maps", *paths, "--out", tmp_path / "x.fits", "--weights", weights,
                        "--no-progress"], capsys, "predict")
        words = (rf"the maps are at Nside {nside}, whose pixels of [\d.]+′ span [\d.]+ patch pixels of 90″: "
                 r"one map pixel would be spread over many patch pixels, so the patches would be far "
                 r"smoother than the sky the network was trained on; cenn accepts map pixels up to 2\.5 "
                 r"patch pixels wide, Nside 1024 or finer here \(Nside 2048 matches these patches\): give "
                 r"maps made at that resolution")
        assert re.search(words, err), err
    err = _refused(["predict", "--maps", *paths, "--out", tmp_path / "x.fits", "--method", "ilc",
                    "--no-progress"], capsys, "predict")
    assert "or patch pixels of at least 1319″ (--pixel-arcsec, with --npix to keep the patches' size)" in err
    assert not (tmp_path / "x.fits").exists()


def test_maps_somewhat_coarser_than_the_patches_are_warned_about():
    pixel = hp.nside2resol(64, arcmin=True) * 60
    check_map_resolution(64, PatchGeometry(16, pixel / 1.2), network=True)  # 1.2 patch pixels: fine
    words = (r"Nside 64, whose pixels of 55′ span 2 patch pixels of .*smoother than the sky the network was "
             r"trained on; maps at Nside 128")
    with pytest.warns(UserWarning, match=words):
        check_map_resolution(64, PatchGeometry(16, pixel / 2), network=True)
    with pytest.raises(ValueError, match="Nside 128 or finer here"):
        check_map_resolution(64, PatchGeometry(16, pixel / 3), network=True)


def test_the_python_full_sky_entry_point_refuses_maps_far_coarser_than_the_network(tmp_path, tiny_weights):
    """``full_sky_maps`` refuses what ``cenn predict --maps`` refuses (one check), before any patch."""
    separator = NetworkSeparator(tiny_weights(tmp_path / "w.safetensors"))
    info = card_info(separator.predictor.card)
    maps = np.stack([_sky(16, seed=s) for s in range(3)])
    calls = []
    separator.separate = lambda *a, **k: calls.append(a)  # never reached
    words = (r"^the maps are at Nside 16, whose pixels of 220′ span 147 patch pixels of 90″: .* Nside 1024 "
             r"or finer here \(Nside 2048 matches these patches\): give maps made at that resolution")
    with pytest.raises(ValueError, match=words):
        full_sky_maps(maps, 16, separator, info, PatchGeometry(64, 90.0), 16, progress=False)
    assert calls == []


# --- 5, 6, 8. training: untrained networks, stores that disagree, impossible numbers ------------------

@pytest.mark.parametrize(("options", "message"), [
    (["--max-steps", "0"], "trainer.max_steps (--max-steps) must be >= 1, or -1 for no limit, got 0: a "
                           "run of 0 steps would export an untrained network"),
    (["--epochs", "0"], "trainer.epochs (--epochs) must be >= 1, got 0: a run of 0 epochs would export an "
                        "untrained network"),
    (["--seed", "-1"], "trainer.seed (--seed) must be a whole number from 0 to 4294967295, got -1"),
    (["--lr", "nan"], "optim.lr (--lr) must be a finite number, got nan"),
    (["--lr", "inf"], "optim.lr (--lr) must be a finite number, got inf"),
    (["--max-time", "inf"], "trainer.max_minutes (--max-time) must be a finite number >= 0"),
    (["--devices", "0"], "trainer.devices (--devices) must be >= 1 or 'auto', got 0"),
    (["--set", "optim.l2=nan"], "optim.l2 must be a finite number, got nan"),
    (["--set", "data.stream_seed=-3"], "data.stream_seed (--set data.stream_seed) must be a whole number"),
    (["--train", "t.zarr"], "data.train (--train t.zarr) is not read when training patches are streamed"),
])
def test_training_that_can_only_go_wrong_is_refused_before_the_run_folder(tmp_path, capsys, options,
                                                                          message):
    run = tmp_path / "run"
    err = _refused(["train", run, "--stream", "--val", tmp_path / "v.zarr", *options], capsys, "train")
    assert message in err
    assert not run.exists()


def test_streaming_options_without_stream_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    err = _refused(["train", run, "--train", "t.zarr", "--val", "v.zarr", "--simulation", "s.toml",
                    "--samples-per-epoch", "64"], capsys, "train")
    assert ("data.simulation (--simulation), data.samples_per_epoch (--samples-per-epoch) only apply to "
            "streamed training patches (data.stream = true, --stream); this run reads the store t.zarr: "
            "add --stream, or drop them") in err
    assert not run.exists()


def test_training_and_validation_stores_with_other_beams_are_refused(tmp_path, capsys):
    geometry = GeometryConfig(npix=32, pixel_arcsec=90.0, margin=8)
    for name, instrument, seed in (("t", "planck_hfi", 1), ("v", "planck_hfi_2015", 2)):
        simulate(tmp_path / f"{name}.zarr", 2, SimulationConfig.from_dict(
            {"seed": seed, "geometry": vars(geometry), "instrument": {"name": instrument}}), progress=False)
    run = tmp_path / "run"
    err = _refused(["train", run, "--train", tmp_path / "t.zarr", "--val", tmp_path / "v.zarr", "--model",
                    "cenn-small", "--no-progress"], capsys, "train")
    words = (r"t\.zarr has beams \(beam_fwhm_arcmin\) of \[7\.22, 4\.9, 4\.92\]′ but .*v\.zarr has "
             r"\[7\.3, 5\.02, 4\.94\]′: the weights' card would state the validation store's beams for a "
             r"network trained on others")
    assert re.search(words, err), err
    assert not run.exists()


# --- 7, 8. options that need another, and impossible numbers, in the other commands -----------------

def test_simulate_options_that_need_another_are_refused(tmp_path, capsys):
    out = tmp_path / "x.zarr"
    err = _refused(["simulate", out, "-n", "1", "--validation-fraction", "0.3"], capsys, "simulate")
    assert ("--validation-fraction sets the part of the sky that --sky-split holds out for validation; "
            "without --sky-split (or a [region.sky_split] table in --config) no sky is held out") in err
    err = _refused(["simulate", out, "-n", "4", "--describe", "--components"], capsys, "simulate")
    assert (f"--describe prints each component's spectra and writes no store, so {out}, --components would "
            "be ignored: drop them, or drop --describe") in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("options", "message"), [
    (["--seed", "-1"], "simulation: seed (--seed) must be a whole number >= 0, got -1"),
    (["--pixel-arcsec", "nan"], "simulation.geometry: pixel_arcsec must be positive and finite, got nan"),
    (["--pixel-arcsec", "-3"], "pixel_arcsec must be positive and finite, got -3.0"),
    (["--batch-size", "0"], "batch_size (--batch-size) must be a whole number >= 1, got 0"),
])
def test_simulate_refuses_impossible_numbers_before_the_store(tmp_path, capsys, options, message):
    assert message in _refused(["simulate", tmp_path / "x.zarr", "-n", "1", *options], capsys, "simulate")
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_a_negative_seed_before_its_folder(tmp_path, capsys):
    err = _refused(["demo", "--out", tmp_path / "demo", "--seed", "-1"], capsys, "demo")
    assert "--seed must be a whole number >= 0, got -1" in err
    assert list(tmp_path.iterdir()) == []


def test_predict_options_of_the_other_mode_are_refused(tmp_path, tiny_weights, capsys):
    weights = tiny_weights(tmp_path / "w.safetensors")
    np.save(tmp_path / "in.npy", np.zeros((1, 3, 64, 64), np.float32))
    patches = ["predict", "--weights", weights, tmp_path / "in.npy", tmp_path / "cmb.npy", "--frequencies",
               "143,217,353", "--pixel-arcsec", "90"]
    err = _refused([*patches, "--nside", "512", "--method", "ilc"], capsys, "predict")
    assert ("--method, --nside apply to full-sky maps (cenn predict --maps FITS ... --out FILE.fits) only; "
            "patches (INPUT OUTPUT) are separated by the network of --weights") in err
    paths = [_healpix(tmp_path / f"{f}.fits", _sky(16), FREQ=f) for f in (143, 217, 353)]
    full = ["predict", "--maps", *paths, "--out", tmp_path / "x.fits", "--no-progress"]
    err = _refused([*full, "--uncertainty", tmp_path / "s.fits"], capsys, "predict")
    assert ("--uncertainty is for patches (cenn predict INPUT OUTPUT), not with --maps: the full sky's σ is "
            "the SIGMA column of --out") in err
    err = _refused([*full, "--fill-nonfinite"], capsys, "predict")
    assert "--fill-nonfinite is for patches" in err
    err = _refused([*full, "--method", "ilc", "--weights", weights], capsys, "predict")
    assert "--weights is for the network methods (cenn, cenn-unbiased); --method ilc does not use it" in err
    err = _refused([*full, "--weights", weights, "--npix", "128", "--instrument", "planck_hfi_2015"],
                   capsys, "predict")
    assert ("--instrument, --npix 128: --method cenn takes its bands, beams and patches (64 pixels of 90″) "
            "from its weights card; these options are for the classical methods") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["143.fits", "217.fits", "353.fits", "in.npy",
                                                          "w.safetensors"]


def test_experiment_options_that_need_a_step_are_refused(tmp_path, capsys):
    out = tmp_path / "exp"
    err = _refused(["experiment", "paper-smoke", "--out", out, "--steps", "train", "--workers", "2"], capsys,
                   "experiment")
    assert ("--workers sets the simulate step's processes, but --steps train does not simulate: drop "
            "--workers or add simulate to --steps") in err
    err = _refused(["experiment", "paper-smoke", "--out", out, "--workers", "-1"], capsys, "experiment")
    assert "--workers must be >= 0 (0: simulate in this process), got -1" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_weights_without_a_network_method_are_refused(tmp_path, capsys):
    err = _refused(["evaluate", tmp_path / "va.zarr", "--out", tmp_path / "report", "--methods", "ilc,nilc",
                    "--weights", tmp_path / "w.safetensors"], capsys, "evaluate")
    assert (f"--weights {tmp_path / 'w.safetensors'} is for a network method, but --methods ilc,nilc has "
            "none, so the weights would not be used: add cenn (or cenn-unbiased, for unbiased weights) to "
            "--methods, or drop --weights") in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("methods", "expected"), [
    (["cenn", "ilc"], "cenn"), (["cenn-unbiased", "ilc"], "cenn-unbiased"),
    (["cenn-unbiased", "cenn"], "cenn")])
def test_evaluate_weights_go_to_one_network_method(methods, expected):
    assert weights_method(methods, "w.safetensors") == expected
    assert weights_method(methods, None) is None


# --- 7. a weights card or a store's attributes edited by hand ---------------------------------------

def _rewrite_weights(path, out, drop=(), **card_changes) -> None:
    """Copy the weights file ``path`` to ``out`` with its card's fields changed by hand (as a user
    rewriting the safetensors metadata would) and the metadata keys ``drop`` removed."""
    with safe_open(path, framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    metadata["cenn"] = json.dumps({**json.loads(metadata["cenn"]), **card_changes})
    save_file(tensors, out, metadata={k: v for k, v in metadata.items() if k not in drop})


def test_a_weights_card_edited_by_hand_is_refused_naming_the_fields(tmp_path, tiny_weights, capsys):
    weights = tiny_weights(tmp_path / "w.safetensors")
    edited = tmp_path / "edited.safetensors"
    _rewrite_weights(weights, edited, beams_arcmin=[7.3, 5.0, 5.0], pixel_arcsec=60.0)
    words = (rf"^{re.escape(str(edited))}: its card was edited after the weights were saved "
             r"\(beams_arcmin, pixel_arcsec no longer match the SHA-256 recorded then\), so it may not "
             r"describe this network: restore the file as cenn wrote it .*; to change a card on purpose, "
             r"save the network with its new card through cenn.model.save_weights$")
    with pytest.raises(ValueError, match=words):
        load_weights(edited)
    _rewrite_weights(weights, tmp_path / "added.safetensors", note="mine")  # a field added is named too
    with pytest.raises(ValueError, match=r"its card was edited after the weights were saved \(note no"):
        load_weights(tmp_path / "added.safetensors")
    np.save(tmp_path / "in.npy", np.zeros((1, 3, 64, 64), np.float32))
    err = _refused(["predict", "--weights", edited, tmp_path / "in.npy", tmp_path / "cmb.npy",
                    "--frequencies", "143,217,353", "--pixel-arcsec", "60"], capsys, "predict")
    assert "its card was edited after the weights were saved (beams_arcmin, pixel_arcsec" in err
    assert not (tmp_path / "cmb.npy").exists()


def test_weights_saved_before_cards_had_checksums_load_and_gain_one_when_exported(tmp_path, tiny_weights):
    weights = tiny_weights(tmp_path / "w.safetensors")
    old = tmp_path / "old.safetensors"
    _rewrite_weights(weights, old, drop=[CARD_SHA256])
    assert load_weights(old)[1] == load_weights(weights)[1]  # read unchecked, silently
    export_weights(old, tmp_path / "new.safetensors", torch.float32)
    with safe_open(tmp_path / "new.safetensors", framework="pt") as f:
        assert json.loads(f.metadata()[CARD_SHA256]) == fields_sha256(json.loads(f.metadata()["cenn"]))


def test_the_shipped_weights_still_load():
    _, card = load_weights(shipped_weights("reference"))
    assert card.frequencies_ghz == FREQS and card.pixel_arcsec == 90.0


def test_edited_fields_names_changed_added_and_removed_fields():
    recorded = fields_sha256({"a": 1, "b": [1.5, 2], "c": {"x": 1, "y": 2}, "complete": False},
                             skip=["complete"])
    assert edited_fields({"a": 1, "b": [1.5, 2], "c": {"y": 2, "x": 1}, "complete": True}, recorded,
                         skip=["complete"]) == []
    assert edited_fields({"a": 2, "c": {"x": 1, "y": 2}, "d": 0}, recorded) == ["a", "b", "d"]
    assert edited_fields({"a": 2}, None) == []  # written before checksums were


def test_store_attributes_edited_by_hand_are_refused_naming_the_fields(tmp_path, capsys):
    tiny = SimulationConfig(seed=3, geometry=GeometryConfig(npix=32, pixel_arcsec=90.0, margin=8))
    store = tmp_path / "va.zarr"
    simulate(store, 2, tiny, chunk_size=2, progress=False)
    DatasetStore.open(store)  # as written: intact, complete flag and all
    group = zarr.open_group(store, mode="r+")
    meta = dict(group.attrs["cenn"])
    group.attrs["cenn"] = {**meta, "beam_fwhm_arcmin": [5.0, 5.0, 5.0], "seed": 4}
    words = (rf"^{re.escape(str(store))}: its 'cenn' attrs \(zarr.json\) were edited after cenn wrote "
             r"them \(beam_fwhm_arcmin, seed no longer match the SHA-256 recorded then\), so they may not "
             r"describe its patches: restore them as cenn wrote them, or recreate the store with `cenn "
             r"simulate \.\.\. --overwrite`$")
    with pytest.raises(StoreError, match=words):
        DatasetStore.open(store)
    err = _refused(["train", tmp_path / "run", "--train", store, "--val", store, "--no-progress"], capsys,
                   "train")
    assert "its 'cenn' attrs (zarr.json) were edited after cenn wrote them (beam_fwhm_arcmin, seed" in err
    assert not (tmp_path / "run").exists()
    group.attrs["cenn"] = {k: v for k, v in meta.items() if k != ATTRS_SHA256}  # a store of an earlier cenn
    assert DatasetStore.open(store).meta["seed"] == 3  # read unchecked, silently
