"""``cenn evaluate`` on stores with Q and U: ILC's residual EE and BB are the noise its weights pass
(CMB and noise only), a known output's residuals come back exactly in every Q/U metric, and a
temperature-only store's evaluation is the temperature part of the same store with Q and U."""

import json
import math

import numpy as np
import pytest
import torch

from cenn.data.store import DatasetStore
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.metrics import as_line, in_range
from cenn.evaluate.run import evaluate
from cenn.model.linear import beam_ratios
from cenn.separation import InputInfo, TargetBandSeparator
from cenn.separators import build_separator
from cenn.sky.flat.eb_spectra import EBSpectra
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.noise import POLARIZATION_NOISE_FACTOR

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = EvaluationConfig(noise_factors=[], injection=False)
GAIN, OFFSET = 0.9, (2.0, -1.0)  # the known output: GAIN × the 217 GHz map, + OFFSET µK in Q and U


class _Known(TargetBandSeparator):
    """GAIN × the target band in temperature; in Q and U also OFFSET[s] added (µK)."""

    name, stokes_agnostic = "known", False

    def separate(self, inputs, info, noise_sigma=None):
        return GAIN * super().separate(inputs, info, noise_sigma)

    def separate_polarization(self, polarization, info, noise_sigma=None):
        offset = torch.tensor(OFFSET)[None, :, None, None]
        return GAIN * polarization[:, :, info.target_channel] + offset


class _TemperatureOnly(TargetBandSeparator):
    name, stokes_agnostic = "t-only", False


def _pol(metrics, method, dataset="high"):
    return metrics["polarization"]["results"][method][dataset]


def test_ilc_residual_ee_and_bb_are_the_noise_of_its_weights(polarized_stores, tmp_path):
    metrics = evaluate([("high", polarized_stores["noisy"])], {"ilc": build_separator("ilc")}, tmp_path / "r",
                       CONFIG, progress=False)
    store = DatasetStore.open(polarized_stores["noisy"])
    info = InputInfo.from_store_meta(store.meta)
    ilc = build_separator("ilc")
    ilc.separate_polarization(torch.from_numpy(store.read("polarization")), info)
    w2 = ilc.last_weights.double().pow(2).mean(0)  # (C,): ⟨w_c²⟩ over patches, Q and U
    geometry = PatchGeometry(store.meta["geometry"]["npix"], info.pixel_arcsec)
    ell = torch.arange(0.0, 8000.0, dtype=torch.float64)
    gains = beam_ratios(ell, info.beam_fwhm_arcmin, info.target_beam_fwhm_arcmin, 100.0) ** 2  # (C, L)
    sigma2 = (POLARIZATION_NOISE_FACTOR * torch.tensor(info.noise_uk_per_pixel, dtype=torch.float64)) ** 2
    noise_cl = (w2 * sigma2 * geometry.pixel_area_sr) @ gains  # µK² sr: white Q/U noise through the ILC
    spectra = EBSpectra(geometry, CONFIG.binning(geometry), CONFIG.taper_width(geometry))
    expected = spectra.expected(ell.numpy(), noise_cl.numpy(), noise_cl.numpy())
    centres = spectra.ell
    result = _pol(metrics, "ilc")
    keep = in_range(centres, 50.0, 1500.0) & np.isfinite(as_line(result["per_bin"]["ee_residual_dl_mean"]))
    for key in ("ee", "bb"):
        line = as_line(result["per_bin"][f"{key}_residual_dl_mean"])[keep]
        error = as_line(result["per_bin"][f"{key}_residual_dl_std"])[keep] / math.sqrt(store.n_patches)
        model = (centres * (centres + 1) / (2 * math.pi) * expected[key])[keep]
        measured, predicted = line.mean(), model.mean()
        assert measured == pytest.approx(result[f"residual_{key}_dl"]["mean"], rel=1e-12)
        within = 3 * np.sqrt(np.sum(error**2)) / keep.sum()  # 3 standard errors of the mean over bins
        assert abs(measured - predicted) < within, (key, measured, predicted)
        assert abs(measured / predicted - 1) < 0.1, (key, measured, predicted)


def test_a_known_output_gives_back_its_q_u_residuals_and_spectra(polarized_stores, tmp_path):
    store = DatasetStore.open(polarized_stores["clean"])
    label = store.read("target_polarization").astype(np.float64)  # (N, 2, H, W)
    band = store.read("polarization")[:, :, 1].astype(np.float64)  # 217 GHz, CMB only, no noise
    np.testing.assert_allclose(band, label, rtol=0, atol=1e-4)
    separators = {"known": _Known(), "t-only": _TemperatureOnly()}
    metrics = evaluate([("high", polarized_stores["clean"])], separators, tmp_path / "r", CONFIG,
                       progress=False)
    pol = metrics["polarization"]
    assert list(pol["results"]) == ["known"] and pol["skipped"] == {"t-only": "does not separate Q and U"}
    result = pol["results"]["known"]["high"]
    residual = label - (GAIN * band + np.asarray(OFFSET)[None, :, None, None])
    mean_patch = residual.mean(0)
    for s, stokes in enumerate(("q", "u")):
        rms = np.sqrt((residual[:, s] ** 2).mean(axis=(1, 2)))
        assert result["pixel"][stokes]["residual_rms_mean_uk"] == pytest.approx(rms.mean(), rel=1e-5)
        assert result["pixel"][stokes]["mean_residual_uk"] == pytest.approx(residual[:, s].mean(), rel=1e-5)
        table1 = result["mean_residual_patch"][stokes]
        assert table1["mean_uk"] == pytest.approx(mean_patch[s].mean(), rel=1e-5)
        assert table1["rms_uk"] == pytest.approx(np.sqrt((mean_patch[s] ** 2).mean()), rel=1e-5)
    # the offsets are the patches' means, which the spectra leave out: the spectra scale as GAIN
    data = pol["datasets"]["high"]
    lo, hi = pol["ell_ranges"]["residual"]
    ee = as_line(data["ee_dl_mean"])
    keep = in_range(as_line(data["ell"]), lo, hi) & np.isfinite(ee)
    assert result["residual_ee_dl"]["mean"] == pytest.approx((1 - GAIN) ** 2 * ee[keep].mean(), rel=1e-3)
    assert result["residual_bb_dl"]["mean"] == pytest.approx(
        (1 - GAIN) ** 2 * as_line(data["bb_dl_mean"])[keep].mean(), rel=1e-3)
    recovery = {k: v for k, v in result["ee_recovery"].items() if k != "half_split_ratio"}
    assert recovery == pytest.approx({"n_patches": store.n_patches, "ratio": GAIN**2, "transfer": GAIN},
                                     rel=1e-4)
    assert result["ee_recovery"]["half_split_ratio"] is None and result["half_split"] is None  # no halves
    assert result["residual_bb_over_lensing"] == pytest.approx((1 - GAIN) ** 2 * data["bb_over_lensing"],
                                                               rel=1e-3)
    assert result["te"]["amplitude"] == pytest.approx(GAIN**2, rel=1e-4)
    assert result["te"]["delta_dl"]["mean"] == pytest.approx(
        (1 - GAIN**2) * as_line(data["te_dl_mean"])[keep].mean(), rel=1e-3)
    # the CMB itself: the shipped lensing BB and lensed EE, as the estimator sees them
    assert data["bb_over_lensing"] == pytest.approx(1.0, abs=0.25)
    assert data["ee_over_model"] == pytest.approx(1.0, abs=0.25)


def _without_run_facts(metrics: dict) -> dict:
    """``metrics`` less what differs between two runs (time, durations, the store's path)."""
    out = json.loads(json.dumps(metrics, default=lambda x: x.tolist()))
    for key in ("created", "timing_s"):
        out.pop(key)
    for data in out["datasets"].values():
        data.pop("path")
    return out


def test_a_temperature_only_store_is_evaluated_as_before(polarized_stores, tmp_path):
    separators = {m: build_separator(m) for m in ("ilc", "target-band")}
    both, alone = (evaluate([("high", polarized_stores[name])], separators, tmp_path / out, CONFIG,
                            progress=False) for name, out in (("noisy", "iqu"), ("noisy_t", "i")))
    assert "polarization" in both and "polarization" not in alone
    both = _without_run_facts(both)
    both.pop("polarization")
    assert both == _without_run_facts(alone)
    files = {p.relative_to(tmp_path / "iqu").as_posix() for p in (tmp_path / "iqu").rglob("*") if p.is_file()}
    files_t = {p.relative_to(tmp_path / "i").as_posix() for p in (tmp_path / "i").rglob("*") if p.is_file()}
    assert files - files_t == {"figures/polarization_spectra.png", "tables/polarization.csv",
                               "tables/polarization_spectra_high_ilc.csv",
                               "tables/polarization_spectra_high_target-band.csv"}
    assert files_t < files
    assert "Polarization (Q and U)" in (tmp_path / "iqu/report.md").read_text()
    assert "Polarization" not in (tmp_path / "i/report.md").read_text()
