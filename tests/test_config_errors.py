"""Configuration files and options with unknown keys, wrong types or impossible values are refused
by the command line before anything is written, with a message naming the key."""

import pytest

from cenn.cli import main

SIMULATE = [
    ("seed = 'x'\n", "simulation.seed: expected an integer, got 'x'"),
    ("[geometri]\nnpix = 64\n", "unknown key(s) ['geometri']"),
    ("[geometry]\nnpix = 0\n", "npix must be an integer >= 8, got 0"),
    ("[geometry]\nmargin = -1\n", "margin must be >= 0 pixels"),
    ("[instrument]\nnoise_scale = -1\n", "noise_scale must be >= 0, got -1.0"),
    ("[region]\nlat_min = 10\nlat_max = 95\n", "0 <= lat_min < lat_max <= 90, got [10.0, 95.0]"),
    ("[region]\nlat_min = 30\nlat_max = 5\n", "0 <= lat_min < lat_max <= 90"),
    ("[components.dust]\nenabled = 'yes'\n", "components.dust.enabled must be true or false"),
    ("[components.nonsense]\n", "unknown component(s) ['nonsense']"),
    ("[components.cmb]\nscale = 'big'\n", "cmb"),
    ("[region.sky_split]\npart = 'test'\n", "part must be one of train, validation"),
]


@pytest.mark.parametrize(("text", "message"), SIMULATE)
def test_bad_simulation_files_are_refused(tmp_path, capsys, text, message):
    (tmp_path / "sim.toml").write_text(text)
    assert main(["simulate", str(tmp_path / "out.zarr"), "-n", "2", "--config", str(tmp_path / "sim.toml"),
                 "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.parametrize("patches", ["0", "-3"])
def test_zero_or_negative_patches_are_refused(tmp_path, capsys, patches):
    assert main(["simulate", str(tmp_path / "out.zarr"), "-n", patches, "--no-progress"]) == 2
    assert "a dataset needs at least one patch" in capsys.readouterr().err
    assert not (tmp_path / "out.zarr").exists()


TRAIN = [
    (["--set", "optim.lr=-1"], "optim.lr (--lr) must be > 0, got -1.0"),
    (["--epochs", "0"], "trainer.epochs (--epochs) must be >= 1, got 0: a run of 0 epochs would export an "
                        "untrained network"),
    (["--set", "optim.foo=1"], "train.optim: unknown key(s) ['foo']"),
    (["--set", "trainer.batch_size=many"], "trainer.batch_size"),
]


@pytest.mark.parametrize(("options", "message"), TRAIN)
def test_bad_training_settings_are_refused_before_any_folder_is_made(tmp_path, capsys, options, message):
    run, val = str(tmp_path / "run"), str(tmp_path / "v.zarr")
    assert main(["train", run, "--stream", "--val", val, *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
