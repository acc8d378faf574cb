"""The unbiased network as an evaluation method: ``cenn-unbiased`` (by name, or with weights given),
its response to an injected CMB equal to one in every ℓ bin, and the shipped-weights names."""

import math

import pytest

from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.pretrained import SHIPPED, is_shipped, resolve_weights
from cenn.separators import build_separator


def test_unbiased_network_has_unit_response_in_every_bin(stores, tiny_unbiased_weights, tmp_path):
    weights = tiny_unbiased_weights(tmp_path / "unbiased.safetensors")
    separators = {"cenn-unbiased": build_separator("cenn-unbiased", weights=weights)}
    metrics = evaluate([("sky", stores["sky"])], separators, tmp_path / "report",
                       EvaluationConfig(batch_size=8, noise_factors=()), progress=False)
    table = metrics["results"]["cenn-unbiased"]["sky"]["per_bin"]
    response = [r for r, ell in zip(table["response_transfer"], table["ell"], strict=True)
                if 30 <= ell < 2500 and r is not None and math.isfinite(r)]
    assert len(response) >= 5
    assert max(abs(r - 1.0) for r in response) < 1e-4


def test_the_report_says_which_map_to_use_for_what(stores, tiny_sigma_weights, tiny_unbiased_weights,
                                                   tmp_path):
    mse = tiny_sigma_weights(tmp_path / "mse.safetensors")
    unbiased = tiny_unbiased_weights(tmp_path / "u.safetensors")
    separators = {"cenn": build_separator("cenn", weights=mse),
                  "cenn-unbiased": build_separator("cenn-unbiased", weights=unbiased)}
    evaluate([("sky", stores["sky"])], separators, tmp_path / "report",
             EvaluationConfig(batch_size=8, noise_factors=()), progress=False)
    text = (tmp_path / "report" / "report.md").read_text()
    section = text[text.index("Which map for what"):]
    assert "power spectra, lensing, cross-correlation" in section and "visualisation" in section
    row = next(line for line in section.splitlines() if "cenn-unbiased" in line and "|" in line)
    assert float(row.split("|")[-2]) < 1e-4  # the unbiased map's largest |response − 1|


def test_shipped_weights_are_found_by_name_and_a_missing_one_is_named():
    assert resolve_weights("reference").name == SHIPPED["reference"]
    if not is_shipped("unbiased"):
        with pytest.raises(FileNotFoundError, match="ships no unbiased weights"):
            resolve_weights("unbiased")
    else:
        assert resolve_weights("unbiased").name == SHIPPED["unbiased"]
    # a temperature model's name, for Q/U input, is its Q/U counterpart
    assert resolve_weights("reference", "QU").name == SHIPPED["polarization"]
    assert resolve_weights("polarization", "QU").name == SHIPPED["polarization"]
    if is_shipped("unbiased-polarization"):
        assert resolve_weights("unbiased", "QU").name == SHIPPED["unbiased-polarization"]
