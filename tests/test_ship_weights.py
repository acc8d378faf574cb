"""scripts/ship_weights.py: the model card's evaluation section rewritten from a new evaluation of
the shipped weights, everything above it kept."""

import importlib.util
import json
from pathlib import Path

import pytest

from cenn.cli import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ship_weights.py"
CMB_ONLY = ["--disable", "dust", "--disable", "cib", "--disable", "radio", "--disable", "tsz",
            "--disable", "infrared_galaxies"]


@pytest.fixture(scope="module")
def ship_weights():
    spec = importlib.util.spec_from_file_location("ship_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_evaluation_section_is_rewritten_from_the_report(ship_weights, tmp_path):
    store, report = tmp_path / "high.zarr", tmp_path / "report"
    assert main(["simulate", str(store), "-n", "4", "--npix", "64", "--band", "high", "--seed", "4242",
                 "--no-progress", *CMB_ONLY]) == 0
    assert main(["evaluate", f"high={store}", "--methods", "target-band", "--out", str(report),
                 "--noise-factors", "none", "--no-progress"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    rms = metrics["results"]["target-band"]["high"]["pixel"]["residual_rms_mean_uk"]
    head = "# card\n\n## What it is\n\nkept as it was\n\n"
    card = ship_weights.reevaluated(head + "## Evaluation\n\nold figures\n", metrics)
    assert card.startswith(head) and "old figures" not in card
    assert "high: 4 patches, seed 4242" in card
    row = next(line for line in card.splitlines() if " target-band " in line and line.startswith("30°"))
    assert float(row.split()[7]) == pytest.approx(rms, rel=5e-3)  # the patch RMS column, 3 figures
    with pytest.raises(ValueError, match="no '## Evaluation' section"):
        ship_weights.reevaluated(head, metrics)


def test_training_stages_are_read_back_from_a_card(ship_weights):
    card = ("# card\n\n## Training\n\nin 2 run(s):\n\n  - 12,288 streamed patches; adamw\n"
            "  - 28,672 streamed patches; adamw\n\n- In all: 40,960 samples; a CPU\n\n## Evaluation\n")
    assert ship_weights.card_stages(card) == (["  - 12,288 streamed patches; adamw",
                                               "  - 28,672 streamed patches; adamw"], 40_960)
    with pytest.raises(ValueError, match="lists no training stages"):
        ship_weights.card_stages("## Training\n\nnothing\n\n## Evaluation\n")
    # the shipped card's stages add up to the samples it states
    stages, samples = ship_weights.card_stages((ship_weights.PRETRAINED / "MODEL_CARD.md").read_text())
    assert sum(int(s.split()[1].replace(",", "")) for s in stages) == samples > 0


def test_the_shipped_card_names_no_folder_of_the_training_machine(ship_weights):
    from cenn.model import load_weights
    from cenn.pretrained import default_weights

    _, card = load_weights(default_weights())
    made = ship_weights.portable(card.__class__(**{**card.__dict__, "training": {
        "config": {"model": {"init_weights": "/home/x/repo/src/cenn/pretrained/w.safetensors"},
                   "data": {"val": "/scratch/val.zarr", "simulation": "src/cenn/configs/a.toml"}},
        "stages": ["/data/runs/r1/weights.safetensors"], "seed": 3}}))
    config = made.training["config"]
    assert config["model"]["init_weights"] == "src/cenn/pretrained/w.safetensors"
    assert config["data"] == {"val": "val.zarr", "simulation": "src/cenn/configs/a.toml"}
    assert made.training["stages"] == ["weights.safetensors"] and made.training["seed"] == 3
    assert '"/' not in card.to_json()  # no absolute path anywhere in the shipped card


def _qu_entry(ee: float) -> dict:
    """One method's Q/U figures on one set, as metrics.json's polarization holds them."""
    return {"pixel": {"q": {"residual_rms_mean_uk": 2.0}, "u": {"residual_rms_mean_uk": 2.1}},
            "mean_residual_patch": {"q": {"rms_uk": 0.5}, "u": {"rms_uk": 0.6}},
            "residual_ee_dl": {"mean": ee, "std": 0.1 * ee}, "residual_bb_dl": {"mean": 1.0, "std": 0.2},
            "ee_recovery": {"ratio": 0.9}, "residual_bb_over_lensing": 3.0, "te": {"amplitude": 0.95}}


def test_a_polarization_card_compares_the_network_with_the_best_classical_method(ship_weights):
    polarization = {
        "ell_ranges": {"residual": [50.0, 1500.0], "ee_recovery": [100.0, 1500.0],
                       "lensing_bb": [100.0, 1000.0]},
        "high_latitude_deg": 30.0, "datasets": {"high": {}, "inner": {}},
        "results": {"cenn": {"high": _qu_entry(3.0), "inner": _qu_entry(9.0)},
                    "ilc": {"high": _qu_entry(20.0), "inner": _qu_entry(12.0)},
                    "nilc": {"high": _qu_entry(10.0), "inner": _qu_entry(15.0)},
                    "target-band": {"high": _qu_entry(1.0), "inner": _qu_entry(1.0)}}}
    # the 217 GHz map itself is no separation: never "the best classical method"
    assert ship_weights.best_classical_ratios(polarization) == {"high": ("nilc", 0.3), "inner": ("ilc", 0.75)}
    metrics = {"polarization": polarization, "datasets": {"high": {"n_patches": 96, "seed": 9454},
                                                          "inner": {"n_patches": 96, "seed": 9452}}}
    card = ship_weights.reevaluated("# card\n\n## Evaluation\n\nold\n", metrics, "QU")
    assert "high: 96 patches, seed 9454" in card and "old" not in card
    assert [line.split()[-2:] for line in card.splitlines() if line.split()[-1:] in (["0.30"], ["0.75"])] == [
        ["nilc", "0.30"], ["ilc", "0.75"]]


def test_a_candidate_left_out_leaves_every_other_figure_and_the_report_as_they_were(ship_weights):
    metrics = {"results": {"cenn": {"high": 1.0}, "cenn-unbiased": {"high": 2.0}},
               "cross_sky": {"cenn": {"high": 3.0}, "cenn-unbiased": {"high": 4.0}},
               "polarization": {"results": {"cenn": {"high": 5.0}, "cenn-unbiased": {"high": 6.0}}}}
    kept = ship_weights.without_methods(metrics, ["cenn-unbiased"])
    assert kept == {"results": {"cenn": {"high": 1.0}}, "cross_sky": {"cenn": {"high": 3.0}},
                    "polarization": {"results": {"cenn": {"high": 5.0}}}}
    assert metrics["polarization"]["results"]["cenn-unbiased"] == {"high": 6.0}  # the report untouched
    only_ilc = {"results": {"ilc": {}}}
    assert ship_weights.without_methods(only_ilc, ["cenn-unbiased"]) == only_ilc


def test_the_reading_follows_the_shipped_model_whatever_else_the_report_holds(ship_weights):
    # a report with both networks: the unbiased card states its response, the reference card its transfer
    per_bin = {"ell": [20.0, 100.0, 1000.0, 3000.0], "response_transfer": [1.5, 1.00002, 0.99997, 2.0]}
    metrics = {"results": {"cenn": {"high": {}}, "cenn-unbiased": {"high": {"per_bin": per_bin}}}}
    unbiased = ship_weights._reading(metrics, "cenn-unbiased")
    assert "it is 1 within 3.0e-05" in unbiased and "the map is unbiased" in unbiased
    reference = ship_weights._reading(metrics, "cenn")
    assert "it is not unbiased" in reference and "within" not in reference
