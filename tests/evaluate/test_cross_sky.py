"""The cross-model test's ratio over NILC's and its bootstrap interval, on per-patch figures whose
answer is known: a paired pair of stores (same seed) draws the same patches from both skies, so a
method whose every patch doubles while NILC's stay put has the ratio 2 in every draw."""

import numpy as np
import pytest

from cenn.evaluate.cross_sky import cross_sky, cross_sky_table

N = 64
SIGMA_LN = 0.5


def _result(rms: np.ndarray) -> dict:
    """One ``results.<method>.<set>`` entry with per-patch RMS and a flat residual D_ℓ of rms²."""
    ell = [400.0, 1000.0, 2000.0]
    dl = rms**2
    return {"pixel": {"residual_rms_mean_uk": float(np.mean(rms))},
            "per_bin": {"ell": ell, "residual_dl_mean": [float(np.mean(dl))] * 3,
                        "delta_dl_mean": [0.0] * 3, "transfer": [1.0] * 3},
            "per_patch": {"residual_rms_uk": rms, "residual_dl_uk2": dl}}


def _evaluation(seed_alternative: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(1)
    rms = rng.lognormal(3.0, SIGMA_LN, N)  # the default sky's per-patch RMS, µK
    nilc = rng.lognormal(4.0, SIGMA_LN, N)  # NILC's, not proportional to the network's
    results = {"cenn": {"high": _result(rms), "alt-high": _result(2.0 * rms)},
               "nilc": {"high": _result(nilc), "alt-high": _result(nilc)}}
    datasets = {"high": {"seed": 9404, "region_deg": [30.0, 90.0], "n_patches": N},
                "alt-high": {"seed": seed_alternative, "region_deg": [30.0, 90.0], "n_patches": N}}
    return results, datasets


def test_a_paired_set_draws_the_same_patches_from_both_skies():
    entry = cross_sky(*_evaluation(9404))["cenn"]["high"]
    assert entry["paired"] is True
    assert entry["residual_rms_uk_vs_nilc"] == pytest.approx(2.0)
    assert entry["residual_rms_uk_vs_nilc_interval"] == pytest.approx([2.0, 2.0], rel=1e-12)
    assert entry["residual_dl_uk2_vs_nilc"] == pytest.approx(4.0)
    assert entry["residual_dl_uk2_vs_nilc_interval"] == pytest.approx([4.0, 4.0], rel=1e-12)


def test_an_unpaired_set_shows_where_its_patches_fell():
    """Other seeds: the same per-patch numbers, drawn independently on each sky, spread the ratio
    around 2: four independent means of N lognormal patches, each with a relative scatter of
    √((exp(σ_ln²) − 1) / N), so a 68 % half-width of 2 × 2 × that."""
    cross = cross_sky(*_evaluation(9414))
    entry = cross["cenn"]["high"]
    assert entry["paired"] is False
    lo, hi = entry["residual_rms_uk_vs_nilc_interval"]
    assert lo < 2.0 < hi
    assert (hi - lo) / 2 == pytest.approx(4.0 * np.sqrt(np.expm1(SIGMA_LN**2) / N), rel=0.3)
    assert cross["nilc"]["high"]["residual_rms_uk_vs_nilc_interval"] == pytest.approx([1.0, 1.0])
    header, rows = cross_sky_table(cross)
    assert header[2] == "paired" and header[6] == "ratio / NILC's (68 %)"
    assert rows[0][2] == "no" and rows[0][6] == f"2 ({lo:.3g}–{hi:.3g})"


def test_results_without_per_patch_figures_have_no_interval():
    results, datasets = _evaluation(9404)
    for per_set in results.values():
        for result in per_set.values():
            del result["per_patch"]
    entry = cross_sky(results, datasets)["cenn"]["high"]
    assert entry["residual_rms_uk_vs_nilc"] == pytest.approx(2.0)
    assert "residual_rms_uk_vs_nilc_interval" not in entry
    assert cross_sky_table({"cenn": {"high": entry}})[1][0][6] == "2"
