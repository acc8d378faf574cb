"""Calibration of a stated σ (``cenn.evaluate.calibration``) on cases with known answers: an output
equal to the label plus σ·N(0, 1) noise stating that σ (calibrated), the same stating σ/2, a method
without σ, and the confidence mask on hand-made maps."""

import csv
import itertools
import json
import math

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from cenn.evaluate import figures
from cenn.evaluate.analysis import evaluate_dataset
from cenn.evaluate.calibration import NOMINAL_LEVELS, Z_EDGES, CalibrationStats, calibration_summary
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.evaluate.summary import method_summary
from cenn.separators import InputInfo, Separator, TargetBandSeparator

CONFIG = EvaluationConfig(batch_size=6, injection=False, noise_factors=[])
NPIX = 64
#: The known per-pixel σ (µK): log-spaced from 2 to 200 µK across the columns, the same in every row;
#: σ ≤ 50 µK in the first 45 of the 64 columns.
SIGMA = torch.from_numpy(np.geomspace(2.0, 200.0, NPIX)).float().expand(NPIX, NPIX).clone()


class Noisy(Separator):
    """The target band (the label, in the CMB-only store) plus σ·N(0, 1) noise with σ = :data:`SIGMA`,
    stating ``stated × σ``; counts its calls."""

    name = "noisy"

    def __init__(self, stated: float = 1.0, seed: int = 0):
        self.stated, self.generator = stated, torch.Generator().manual_seed(seed)
        self.calls = {"separate": 0, "separate_with_sigma": 0}

    def _noisy(self, inputs: torch.Tensor, info: InputInfo) -> tuple[torch.Tensor, torch.Tensor]:
        cmb = TargetBandSeparator().separate(inputs, info)
        sigma = SIGMA.expand(cmb.shape)
        return cmb + sigma * torch.randn(cmb.shape, generator=self.generator), self.stated * sigma

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        self.calls["separate"] += 1
        return self._noisy(inputs, info)[0]

    def separate_with_sigma(self, inputs: torch.Tensor, info: InputInfo,
                            noise_sigma: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls["separate_with_sigma"] += 1
        return self._noisy(inputs, info)


class Offset(Separator):
    """The target band plus a constant: residual −offset everywhere, no σ."""

    name = "offset"

    def __init__(self, offset: float):
        self.offset = offset

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        return TargetBandSeparator().separate(inputs, info) + self.offset


@pytest.fixture(scope="module")
def evaluation(stores):
    methods = {"noisy": Noisy(), "half": Noisy(stated=0.5, seed=1), "offset": Offset(3.0)}
    ev = evaluate_dataset(stores["clean"], methods, CONFIG, progress=False)
    return ev, methods, {m: method_summary(ev, m, CONFIG)["calibration"] for m in methods}


def test_a_calibrated_sigma_covers_the_normal_fractions(evaluation):
    _, _, cal = evaluation
    c = cal["noisy"]
    assert c["n_pixels"] == 16 * NPIX * NPIX and c["n_invalid"] == 0
    assert c["coverage"]["1sigma"] == pytest.approx(0.683, abs=0.02)
    assert c["coverage"]["2sigma"] == pytest.approx(0.954, abs=0.01)
    assert c["coverage"]["expected_1sigma"] == pytest.approx(0.682689, abs=1e-6)
    assert c["coverage"]["expected_2sigma"] == pytest.approx(0.954500, abs=1e-6)
    assert c["z_rms"] == pytest.approx(1.0, abs=0.02) and abs(c["z_mean"]) < 0.02
    rel = c["reliability"]
    assert rel["nominal"] == list(NOMINAL_LEVELS) and len(rel["nominal"]) == 10
    assert rel["z"][4] == pytest.approx(0.674490, abs=1e-6)  # the median of |Z|
    assert np.allclose(rel["observed"], NOMINAL_LEVELS, atol=0.02)
    assert rel["max_deviation"] < 0.02
    h = c["histogram"]
    assert len(h["fraction"]) == len(h["expected"]) == len(Z_EDGES) - 1
    assert sum(h["fraction"]) + h["underflow"] + h["overflow"] == pytest.approx(1.0)
    assert sum(h["expected"]) + h["expected_underflow"] + h["expected_overflow"] == pytest.approx(1.0)
    assert np.allclose(h["fraction"], h["expected"], atol=0.005)  # bins of 0.25 hold ≤ 0.1 each


def test_the_rms_residual_tracks_sigma_in_bins_of_sigma(evaluation):
    _, _, cal = evaluation
    bins = cal["noisy"]["sigma_bins"]
    assert 10 <= len(bins) <= 12
    assert sum(b["n_pixels"] for b in bins) == 16 * NPIX * NPIX
    assert bins[0]["lo_uk"] <= 2.0 and bins[-1]["hi_uk"] >= 200.0
    assert all(b["lo_uk"] < b["hi_uk"] == n["lo_uk"] for b, n in itertools.pairwise(bins))
    for b in bins:
        if b["n_pixels"]:
            assert b["lo_uk"] <= b["sigma_mean_uk"] <= b["sigma_rms_uk"] <= b["hi_uk"]
            assert b["residual_rms_uk"] == pytest.approx(b["sigma_rms_uk"], rel=0.05)
            assert b["residual_rms_uk"] == pytest.approx(b["sigma_mean_uk"], rel=0.05)
    # σ/2 stated: the residual RMS is twice the stated σ
    for b in cal["half"]["sigma_bins"]:
        if b["n_pixels"]:
            assert b["residual_rms_uk"] == pytest.approx(2 * b["sigma_rms_uk"], rel=0.05)


def test_a_sigma_half_the_error_covers_less(evaluation):
    _, _, cal = evaluation
    c = cal["half"]
    # |r| < σ/2 for r ~ N(0, σ²): P(|Z| < 1/2) = 0.383; |r| < σ: 0.683
    assert c["coverage"]["1sigma"] == pytest.approx(math.erf(0.5 / math.sqrt(2)), abs=0.02)
    assert c["coverage"]["1sigma"] == pytest.approx(0.383, abs=0.02)
    assert c["coverage"]["2sigma"] == pytest.approx(0.683, abs=0.02)
    assert c["z_rms"] == pytest.approx(2.0, rel=0.02)
    expected = [math.erf(z / 2 / math.sqrt(2)) for z in c["reliability"]["z"]]
    assert np.allclose(c["reliability"]["observed"], expected, atol=0.02)
    assert c["reliability"]["max_deviation"] > 0.3


def test_a_method_without_sigma_has_no_calibration_entry(evaluation):
    ev, _, cal = evaluation
    assert cal["offset"] is None
    assert set(ev.calibration) == {"noisy", "half"}


def test_the_network_runs_once_per_batch(evaluation):
    """The main outputs and σ come from one ``separate_with_sigma`` call per batch; ``separate`` is
    only used for the two example patches (no injection, no noise test here)."""
    ev, methods, _ = evaluation
    n_batches = math.ceil(ev.n_patches / CONFIG.batch_size)
    assert methods["noisy"].calls == {"separate": 2, "separate_with_sigma": n_batches}


def test_the_confidence_mask_in_the_evaluation(evaluation):
    _, _, cal = evaluation
    mask = cal["noisy"]["mask"]
    assert mask["threshold_uk"] == 50.0
    assert mask["kept_fraction"] == 45 / 64 and mask["n_kept"] == 16 * NPIX * 45
    inside = float(SIGMA[0, :45].double().pow(2).mean().sqrt())
    outside = float(SIGMA[0, 45:].double().pow(2).mean().sqrt())
    assert mask["residual_rms_in_uk"] == pytest.approx(inside, rel=0.02)
    assert mask["residual_rms_out_uk"] == pytest.approx(outside, rel=0.02)
    offset = mask["others"]["offset"]
    assert offset["residual_rms_in_uk"] == pytest.approx(3.0, rel=1e-3)
    assert offset["residual_rms_all_uk"] == pytest.approx(3.0, rel=1e-3)
    assert offset["rms_ratio_in"] == pytest.approx(mask["residual_rms_in_uk"] / 3.0, rel=1e-3)
    assert set(mask["others"]) == {"half", "offset"}


def test_mask_fraction_and_rms_on_a_small_case():
    target = torch.tensor([[[5.0, -1.0, 0.0], [2.0, 7.0, 1.0]]])
    sigma = torch.tensor([[[10.0, 40.0, 60.0], [50.0, 100.0, math.nan]]])
    output = target + torch.tensor([[[1.0, -2.0, 3.0], [4.0, 5.0, 6.0]]])
    stats = CalibrationStats(mask_above_uk=50.0)
    stats.add(target, output, sigma, {"other": target + 2.0})
    c = calibration_summary(stats)
    assert c["n_pixels"] == 6 and c["n_invalid"] == 1  # the NaN σ: left out, never in the mask
    mask = c["mask"]
    assert mask["kept_fraction"] == 0.5 and mask["n_kept"] == 3  # σ = 10, 40, 50
    assert mask["residual_rms_in_uk"] == pytest.approx(math.sqrt((1 + 4 + 16) / 3))
    assert mask["residual_rms_out_uk"] == pytest.approx(math.sqrt((9 + 25) / 2))
    assert mask["residual_rms_all_uk"] == pytest.approx(math.sqrt((1 + 4 + 9 + 16 + 25) / 5))
    other = mask["others"]["other"]
    assert other["residual_rms_in_uk"] == pytest.approx(2.0)
    assert other["rms_ratio_in"] == pytest.approx(math.sqrt(7) / 2)
    # z = (label − output)/σ = −0.1, 0.05, −0.05, −0.08, −0.05: all within 1σ, none below z_0.1 = 0.126
    assert c["coverage"]["1sigma"] == 1.0 and c["reliability"]["observed"][0] == pytest.approx(1.0)
    h = c["histogram"]["fraction"]
    assert h[19] == pytest.approx(0.8) and h[20] == pytest.approx(0.2) and sum(h) == pytest.approx(1.0)
    stats.add(target, output, sigma)  # a second batch doubles the counts, fractions stay
    again = calibration_summary(stats)
    assert again["n_pixels"] == 12 and again["mask"]["kept_fraction"] == 0.5
    assert again["mask"]["residual_rms_in_uk"] == pytest.approx(mask["residual_rms_in_uk"])
    with pytest.raises(ValueError, match="one shape"):
        stats.add(target, output, sigma[:, :1])


def test_the_report_has_the_calibration(stores, tmp_path, drawn):
    config = EvaluationConfig(batch_size=8, injection=False, noise_factors=[], max_patches=8,
                              mask_above_uk=20.0)
    out = tmp_path / "report"
    evaluate([(None, stores["clean"])], {"noisy": Noisy(), "target-band": TargetBandSeparator()}, out,
             config, progress=False)
    data = json.loads((out / "metrics.json").read_text())
    assert data["results"]["target-band"]["high"]["calibration"] is None
    cal = data["results"]["noisy"]["high"]["calibration"]
    assert cal["mask"]["threshold_uk"] == 20.0
    assert cal["mask"]["kept_fraction"] == float(np.mean(SIGMA[0].numpy() <= 20.0))
    rows = list(csv.DictReader((out / "tables" / "calibration.csv").open()))
    assert [(r["dataset"], r["method"]) for r in rows] == [("high", "noisy")]
    assert float(rows[0]["coverage_1sigma"]) == pytest.approx(cal["coverage"]["1sigma"], rel=1e-5)
    mask = list(csv.DictReader((out / "tables" / "calibration_mask.csv").open()))
    assert [r["compared_method"] for r in mask] == ["target-band"]
    assert len(list(csv.reader((out / "tables" / "calibration_reliability.csv").open()))) == 1 + 10
    for name in ("calibration_sigma_bins", "calibration_histogram"):
        assert (out / "tables" / f"{name}.csv").stat().st_size > 100
    # the reliability figure plots the calibrated method's observed fractions at the nominal levels,
    # on the diagonal for the σ it states is the noise's; the PNG is that figure at 110 dpi
    figure = drawn["reliability.png"]
    (ax,) = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"calibrated", "noisy"}
    np.testing.assert_allclose(lines["noisy"].get_xdata(), NOMINAL_LEVELS)
    np.testing.assert_allclose(lines["noisy"].get_ydata(), cal["reliability"]["observed"])
    np.testing.assert_allclose(lines["noisy"].get_ydata(), NOMINAL_LEVELS, atol=0.02)
    (squares,) = [line for line in ax.get_lines() if line.get_marker() == "s"]  # the 1σ and 2σ coverage
    np.testing.assert_allclose(squares.get_ydata(), [cal["coverage"]["1sigma"], cal["coverage"]["2sigma"]])
    height, width = mpimg.imread(out / "figures" / "reliability.png").shape[:2]
    assert (width, height) == tuple(round(v * 110) for v in figure.get_size_inches())
    md = (out / "report.md").read_text()
    assert "## Uncertainty calibration" in md and "figures/reliability.png" in md
    assert "target-band RMS in mask [µK] (ratio)" in md


def test_the_reliability_figure_draws_a_panel_per_dataset(tmp_path, drawn):
    stats = CalibrationStats(mask_above_uk=50.0)
    g = torch.Generator().manual_seed(3)
    stats.add(torch.zeros(2, 8, 8), 5.0 * torch.randn((2, 8, 8), generator=g), torch.full((2, 8, 8), 5.0))
    results = {"cenn": {"a": {"calibration": calibration_summary(stats)}, "b": {"calibration": None}},
               "nilc": {"a": {"calibration": None}, "b": {"calibration": None}}}
    figures.fig_reliability(results, ["a", "b"], tmp_path / "r.png")
    figures.fig_reliability(results, ["a"], tmp_path / "r1.png")
    both, one = drawn["r.png"], drawn["r1.png"]
    assert [ax.get_title() for ax in both.axes] == ["a", "b"] and [ax.get_title() for ax in one.axes] == ["a"]
    observed = results["cenn"]["a"]["calibration"]["reliability"]["observed"]
    for fig in (both, one):
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        np.testing.assert_allclose(lines["cenn"].get_xdata(), NOMINAL_LEVELS)
        np.testing.assert_allclose(lines["cenn"].get_ydata(), observed)
        np.testing.assert_array_equal(lines["calibrated"].get_ydata(), [0, 1])
        assert len(fig.axes[0].texts) == 0 and fig.axes[0].get_xlim() == fig.axes[0].get_ylim() == (0, 1)
    # no method states a σ on b: the diagonal and the note only
    assert [line.get_label() for line in both.axes[1].get_lines()] == ["calibrated"]
    assert [t.get_text() for t in both.axes[1].texts] == [figures.NO_SIGMA_TEXT]
