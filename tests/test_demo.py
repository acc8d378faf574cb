"""`cenn demo`, reduced: four regions of one patch, the network and baselines, the report and the
terminal summary; the shipped reference weights are used when none are given."""

import json

import pytest
import torch

from cenn.cli import main
from cenn.demo import run_demo
from cenn.pretrained import available_weights, default_weights, shipped_weights

pytestmark = pytest.mark.usefixtures("one_thread")

#: Bounds on the shipped model's mean residual RMS (µK) over four seeded patches of the default sky
#: (CO, free-free, synchrotron, scan noise; see the test): measured 8.7 (high latitude) and 29.5 µK
#: (plane); NILC leaves about 48 and 160 µK on that sky.
HIGH_BOUND_UK, INNER_BOUND_UK = 15.0, 45.0


@pytest.fixture(scope="module")
def weights_256(tiny_weights, tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors", npix=256)


def test_demo_writes_the_report_for_every_region_and_method(tmp_path, weights_256):
    metrics = run_demo(tmp_path / "demo", n_per_band=1, methods=("cenn", "ilc", "target-band"),
                       weights=weights_256, progress=False)
    assert list(metrics["datasets"]) == ["all", "inner", "intermediate", "high"]
    assert set(metrics["results"]) == {"cenn", "ilc", "target-band"}
    assert (tmp_path / "demo" / "report" / "report.html").stat().st_size > 1000
    saved = json.loads((tmp_path / "demo" / "report" / "metrics.json").read_text())
    assert saved["methods"]["cenn"]["weights"] == str(weights_256)
    # with Q and U, separated by the shipped polarization model beside the ILC
    assert saved["methods"]["cenn"]["polarization_weights"] == str(shipped_weights("polarization"))
    assert set(metrics["polarization"]["results"]) == {"cenn", "ilc", "target-band"}
    # the ILC removes most of the Galactic plane's foregrounds that the 217 GHz map carries (not all:
    # CO lines, in the 217 and 353 GHz bands only, are a component three bands cannot also null;
    # measured 0.22 on this patch; below 0.1, this test's earlier bound, on the sky without CO)
    inner = metrics["results"]
    assert inner["ilc"]["inner"]["pixel"]["residual_rms_mean_uk"] < \
        0.35 * inner["target-band"]["inner"]["pixel"]["residual_rms_mean_uk"]


def test_demo_command_prints_the_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--patches", "1", "--methods", "ilc,target-band",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Table 1 RMS" in printed and "paper" in printed and "report:" in printed
    bigger = ["demo", "--out", str(tmp_path / "d"), "--patches", "2", "--methods", "target-band",
              "--no-progress"]
    assert main(bigger) == 2  # the data of the first run is kept unless asked
    assert "different n_patches" in capsys.readouterr().err
    assert main([*bigger, "--overwrite"]) == 0


def test_reference_weights_are_shipped_and_load():
    assert available_weights() == ["cenn-polarization-cpu.safetensors", "cenn-unbiased-cpu.safetensors",
                                   "cenn-unet-cpu.safetensors"]
    from cenn.model import load_weights

    model, card = load_weights(default_weights())
    assert card.architecture == "unet" and card.frequencies_ghz == [143.0, 217.0, 353.0]
    assert card.normalization == "asinh" and card.normalization_params == {"scale_uk": 100.0}
    params = card.architecture_params
    assert params["noise_input"] and params["sigma_output"]
    # σ calibrated by a curve in stated σ: 8 bins, factors within a factor 2 of 1, σ increasing
    factors = torch.tensor(params["sigma_curve"]["log_factor"]).exp()
    assert len(factors) == 8 and ((factors > 0.5) & (factors < 2.0)).all()
    assert torch.tensor(params["sigma_curve"]["log_sigma_uk"]).diff().gt(0).all()
    assert card.training["noise_uk_per_pixel"] == pytest.approx([22.0, 31.2, 102.4], rel=2e-3)
    assert sum(p.numel() for p in model.parameters()) == 2_823_170
    unbiased, card = load_weights(shipped_weights("unbiased"))
    assert card.architecture == "sp-nilc-unet" and card.normalization == "identity"
    assert card.architecture_params["beams_arcmin"] == pytest.approx([7.22, 4.90, 4.92])
    assert sum(p.numel() for p in unbiased.parameters()) == 2_823_188


@pytest.mark.parametrize(("band", "bound_uk"), [("high", HIGH_BOUND_UK), ("inner", INNER_BOUND_UK)])
def test_the_reference_model_separates(band, bound_uk):
    """On new patches of the default sky (seed never used in training), the shipped model's residual
    is far below the 217 GHz map's and below NILC's typical 48 µK (high latitude) and 160 µK (plane)
    per patch."""
    from cenn.predict import Predictor
    from cenn.sky.simulator import PatchSimulator, RegionConfig, SimulationConfig

    lat = {"high": (30.0, 90.0), "inner": (0.0, 5.0)}[band]
    batch = PatchSimulator(SimulationConfig(seed=4242, region=RegionConfig(*lat))).simulate(range(4))
    out = torch.as_tensor(Predictor(default_weights()).predict(batch.inputs, [143.0, 217.0, 353.0], 90.0,
                                                               noise_sigma=batch.noise_sigma))
    rms = (out - batch.target).pow(2).mean(dim=(1, 2, 3)).sqrt()
    raw = (batch.inputs[:, 1:2] - batch.target).pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert rms.mean().item() < bound_uk
    assert torch.all(rms < 0.4 * raw)


def test_the_polarization_model_separates_q_and_u():
    """On new high-latitude patches of the default sky (a seed never used in training), the shipped Q/U
    model's residual is far below the 217 GHz Q and U maps' (their noise) and NILC's (about 39 µK per
    pixel there; measured on 96 patches: 2.5 µK for the network)."""
    from cenn.data.stokes import qu_channels, qu_noise_sigma
    from cenn.predict import Predictor
    from cenn.sky.simulator import PatchSimulator, RegionConfig, SimulationConfig

    config = SimulationConfig(seed=4243, region=RegionConfig(30.0, 90.0), stokes="IQU")
    batch = PatchSimulator(config).simulate(range(2))
    predictor = Predictor(shipped_weights("polarization"))
    out = torch.as_tensor(predictor.predict(qu_channels(batch.polarization), [143.0, 217.0, 353.0], 90.0,
                                            noise_sigma=qu_noise_sigma(batch.noise_sigma)))
    rms = (out - batch.target_polarization).pow(2).mean(dim=(1, 2, 3)).sqrt()
    raw = (batch.polarization[:, :, 1] - batch.target_polarization).pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert torch.all(rms < 5.0) and torch.all(rms < 0.15 * raw)
