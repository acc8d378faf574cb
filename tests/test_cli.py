"""The `cenn` command line end to end on tiny datasets."""

import subprocess
import sys

import numpy as np
import pytest
import zarr

from cenn.cli import main


def test_simulate_writes_a_store(tmp_path, capsys):
    out = tmp_path / "tiny.zarr"
    code = main(["simulate", str(out), "-n", "5", "--npix", "64", "--band", "high", "--seed", "4",
                 "--noise-scale", "5", "--components", "--chunk-size", "2", "--no-progress"])
    assert code == 0
    assert "5 patches, complete" in capsys.readouterr().out
    g = zarr.open_group(out, mode="r")
    assert g["inputs"].shape == (5, 3, 64, 64)
    assert np.all(np.abs(g["lat"][:]) >= 30)
    meta = g.attrs["cenn"]
    assert meta["config"]["instrument"]["noise_scale"] == 5.0
    assert meta["noise_uk_per_pixel"][0] == 110.0
    assert "noise" in meta["components"] and "cmb" in meta["components"]


def test_components_can_be_switched_off_and_rescaled(tmp_path):
    from cenn.sky.components import COMPONENTS

    off = [a for name in COMPONENTS if name != "cmb" for a in ("--disable", name)]
    common = ["-n", "2", "--npix", "64", "--noise-scale", "0", "--no-progress", *off]
    assert main(["simulate", str(tmp_path / "one.zarr"), *common]) == 0
    assert main(["simulate", str(tmp_path / "two.zarr"), "--scale", "cmb=2", *common]) == 0
    one = zarr.open_group(tmp_path / "one.zarr", mode="r")
    two = zarr.open_group(tmp_path / "two.zarr", mode="r")
    # CMB only and no noise: the 217 GHz input is the target, and the scale doubles both
    np.testing.assert_allclose(one["inputs"][:, 1], one["target"][:, 0], atol=1e-3)
    np.testing.assert_allclose(two["target"][:], 2 * one["target"][:], rtol=1e-5, atol=1e-3)


def test_errors_name_the_problem(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--band", "40,20"]) == 2
    assert "latitude band" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--disable", "nonsense"]) == 2
    assert "unknown component" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--config",
                 str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["simulate", "-n", "2"]) == 2
    assert "output path" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--map", "cmb=missing.fits"]) == 2
    assert "missing.fits not found" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--map", "dust:353=missing.fits"]) == 2
    assert "dust: map" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", str(tmp_path / "x.zarr"), "-n", "2", "--map", "cmb.fits"])
    assert "COMPONENT=FILE" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_describe_prints_the_component_table(capsys):
    assert main(["simulate", "--describe", "-n", "2", "--npix", "128", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| cmb | 217 | all |" in out and "| noise | 353 | high |" in out
    # literature values sit beside the region they describe (dust: the plik high-latitude mask)
    rows = [line for line in out.splitlines() if line.startswith("| dust | 217 |")]
    dust = {line.split("|")[3].strip(): line for line in rows}
    assert dust["high"].endswith("| 111 | 30 | 18 |") and dust["all"].endswith("|  |  |  |")


def test_python_m_cenn_runs():
    done = subprocess.run([sys.executable, "-m", "cenn", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("cenn ")


HEAVY = ("torch", "healpy", "astropy", "zarr", "lightning")


def test_import_and_the_parser_load_no_heavy_package():
    """``import cenn`` and building the ``cenn`` parser (all ``cenn --help`` does) load none of the
    heavy packages; each command loads them when it runs."""
    code = (f"import sys, cenn; before = sorted(m for m in {HEAVY} if m in sys.modules); "
            "from cenn.cli import build_parser; build_parser(); "
            f"print(before, sorted(m for m in {HEAVY} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] []"


def test_the_package_root_loads_its_names_on_first_use():
    import cenn
    from cenn.data.simulate import simulate
    from cenn.sky.simulator import PatchSimulator

    assert cenn.PatchSimulator is PatchSimulator and cenn.simulate is simulate
    assert cenn.__version__ == "0.1.0"
    names = {"Instrument", "PatchDataset", "PatchGeometry", "PatchSimulator", "SimulationConfig",
             "load_instrument", "simulate"}
    assert names <= set(dir(cenn)) and set(cenn.__all__) == {*names, "__version__"}
    assert all(hasattr(cenn, name) for name in cenn.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        cenn.nonsense  # noqa: B018


@pytest.mark.parametrize("command, words", [
    ("evaluate", "(available: cenn, cenn-unbiased, dnilc, hilc, ilc, nilc, target-band, wiener)"),
    ("demo", "(default: cenn,cenn-unbiased,ilc,hilc,nilc,dnilc,wiener,target-band;"),
    ("experiment", "comma-separated subset of simulate,train,evaluate"),
])
def test_help_names_what_the_commands_know(command, words, capsys, monkeypatch):
    """Help filled when printed (:class:`cenn.cli.options.LateHelp`) names the methods and steps."""
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert words in capsys.readouterr().out


def test_the_parser_choices_are_the_commands_own():
    """Choices the parser declares without importing their modules are those modules' own."""
    from cenn.cli.export_weights import DTYPE_NAMES
    from cenn.model.weights import DTYPES

    assert DTYPE_NAMES == tuple(DTYPES) == ("fp32", "fp16", "bf16")
