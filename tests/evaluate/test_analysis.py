"""The evaluation on constructed cases with known answers: a perfect output, an output equal to the
target plus white noise of known σ, a scaled output, the noise test, dust bins and the most
contaminated patch."""

import math

import numpy as np
import pytest
import torch

from cenn.data.store import DatasetStore
from cenn.evaluate.analysis import dataset_name, evaluate_dataset
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.metrics import (
    correlation,
    map_stats,
    pixel_metrics,
    range_summary,
    transfer_error,
    transfer_function,
)
from cenn.evaluate.summary import method_summary
from cenn.separators import InputInfo, Separator, TargetBandSeparator, build_separator

CONFIG = EvaluationConfig(batch_size=5, noise_max_patches=6)


class Scaled(Separator):
    """The target band times a constant."""

    name = "scaled"

    def __init__(self, factor: float):
        self.factor = factor

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.factor * TargetBandSeparator().separate(inputs, info)


def test_pixel_metrics_of_a_perfect_and_a_noisy_output():
    g = torch.Generator().manual_seed(0)
    target = 100 * torch.randn((4, 128, 128), generator=g)
    perfect = pixel_metrics(target, target)
    assert all(float(v.abs().max()) == 0.0 for v in perfect.values())
    noisy = pixel_metrics(target, target + 7.0 * torch.randn((4, 128, 128), generator=g))
    assert torch.allclose(noisy["rms"], torch.full((4,), 7.0, dtype=torch.float64), rtol=0.02)
    assert torch.allclose(noisy["mae"], torch.full((4,), 7.0 * math.sqrt(2 / math.pi), dtype=torch.float64),
                          rtol=0.02)
    assert float(noisy["mean"].abs().max()) < 0.3
    assert float(noisy["max_abs"].min()) > 3 * 7.0


def test_map_stats_and_range_summary():
    m = np.array([[1.0, -1.0], [3.0, 1.0]])
    assert map_stats(m) == {"mean_uk": 1.0, "rms_uk": math.sqrt(3.0), "std_uk": math.sqrt(2.0)}
    ell = np.array([100.0, 500.0, 1500.0, 3000.0])
    line, band = np.array([1.0, 3.0, 5.0, np.nan]), np.array([0.1, 0.3, 0.5, 0.7])
    out = range_summary(ell, line, band, {"low": [0, 1000], "mid": [1000, 2500], "none": [5000, 6000],
                                          "top": [2500, 1e9]})
    assert out["low"] == {"mean": 2.0, "std": pytest.approx(0.2)}
    assert out["mid"] == {"mean": 5.0, "std": 0.5}
    assert out["none"] == {"mean": None, "std": None}
    assert out["top"] == {"mean": None, "std": None}  # a NaN bin counts as empty


def test_transfer_and_correlation_of_constructed_spectra():
    cin = np.full((3, 4), 2.0)
    assert np.allclose(transfer_function(0.5 * cin, cin), 0.5)
    assert np.allclose(correlation(0.5 * cin, 0.25 * cin, cin), 1.0)
    # output = input + independent noise of equal power: t = 1, r = 1/√2
    assert np.allclose(transfer_function(cin, cin), 1.0)
    assert np.allclose(correlation(cin, 2 * cin, cin), 1 / math.sqrt(2))


def test_transfer_error_is_the_delta_method_standard_error():
    cross, cmb = np.array([[1.0], [2.0], [3.0]]), np.full((3, 1), 2.0)
    # t = 1; C_i(out×in) − t C_i(in) = −1, 0, 1: std √(2/3), over √3 patches and ⟨C(in)⟩ = 2
    assert transfer_error(cross, cmb) == pytest.approx([math.sqrt(2 / 3) / (math.sqrt(3) * 2)])
    assert transfer_error(0.5 * cmb, cmb) == pytest.approx([0.0])


def test_response_to_an_injected_cmb_has_no_chance_correlation(stores):
    """The target band passes any CMB: its response to an injected CMB is 1 to rounding, while the
    cross-spectrum transfer function scatters about 1 with the noise; a scaled output's is the scale."""
    ev = evaluate_dataset(stores["noisy"], {"target-band": TargetBandSeparator(), "scaled": Scaled(0.5)},
                          CONFIG, progress=False)
    t = method_summary(ev, "target-band", CONFIG)["per_bin"]
    ok = np.isfinite(t["cmb_dl_mean"])
    assert np.allclose(t["response_transfer"][ok], 1.0, atol=1e-5)
    assert np.abs(t["transfer"][ok] - 1).max() > 1e-3  # the noise's chance correlation
    assert np.all(np.abs(t["transfer"][ok] - 1) < 5 * t["transfer_error"][ok])
    half = method_summary(ev, "scaled", CONFIG)
    assert np.allclose(half["per_bin"]["response_transfer"][ok], 0.5, atol=1e-5)
    assert half["spectra"]["response_transfer"]["all"]["mean"] == pytest.approx(0.5, abs=1e-5)
    # an independent realisation of the same spectrum, not the stored CMB
    injected, stored = np.nanmean(ev.injected[:, ok], axis=0), np.nanmean(ev.cmb[:, ok], axis=0)
    assert not np.allclose(injected, stored, rtol=1e-3)
    assert np.mean(injected) / np.mean(stored) == pytest.approx(1.0, abs=0.2)


def test_injection_refuses_the_store_seed_and_can_be_switched_off(stores):
    with pytest.raises(ValueError, match="injection seed 5 is the store's own seed"):
        evaluate_dataset(stores["noisy"], {"target-band": TargetBandSeparator()},
                         EvaluationConfig(injection_seed=5), progress=False)
    off = EvaluationConfig(batch_size=5, injection=False)
    ev = evaluate_dataset(stores["noisy"], {"target-band": TargetBandSeparator()}, off, progress=False)
    assert np.isnan(method_summary(ev, "target-band", off)["per_bin"]["response_transfer"]).all()


def test_perfect_output_gives_zero_residual(stores):
    ev = evaluate_dataset(stores["clean"], {"target-band": TargetBandSeparator()}, CONFIG, progress=False)
    s = method_summary(ev, "target-band", CONFIG)
    assert s["pixel"]["max_abs_residual_uk"] < 1e-3
    assert s["mean_residual_patch"]["rms_uk"] < 1e-4
    assert abs(s["spectra"]["delta_dl"]["all"]["mean"]) < 1e-6
    assert s["spectra"]["transfer"]["all"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert s["spectra"]["correlation"]["all"]["mean"] == pytest.approx(1.0, abs=1e-6)


def test_scaled_output_has_the_scaled_transfer_function(stores):
    ev = evaluate_dataset(stores["clean"], {"scaled": Scaled(0.5)}, CONFIG, progress=False)
    t = method_summary(ev, "scaled", CONFIG)["per_bin"]
    ok = np.isfinite(t["cmb_dl_mean"])
    assert np.allclose(t["transfer"][ok], 0.5, rtol=1e-5)
    assert np.allclose(t["correlation"][ok], 1.0, rtol=1e-5)
    assert np.allclose(t["delta_dl_mean"][ok], 0.75 * t["cmb_dl_mean"][ok], rtol=1e-4)
    assert np.allclose(t["residual_dl_mean"][ok], 0.25 * t["cmb_dl_mean"][ok], rtol=1e-4)


def test_target_plus_white_noise_gives_sigma_and_a_flat_residual_spectrum(stores):
    ev = evaluate_dataset(stores["noisy"], {"target-band": TargetBandSeparator()}, CONFIG, progress=False)
    sigma = ev.info.noise_uk_per_pixel[ev.info.target_channel]
    s = method_summary(ev, "target-band", CONFIG)
    assert s["pixel"]["residual_rms_mean_uk"] == pytest.approx(sigma, rel=0.02)
    assert s["pixel"]["mae_uk"] == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.02)
    # the mean of N independent noise maps has RMS σ/√N
    assert s["mean_residual_patch"]["rms_uk"] == pytest.approx(sigma / math.sqrt(ev.n_patches), rel=0.05)
    t = s["per_bin"]
    ok = np.isfinite(t["residual_dl_mean"])
    to_cl = 2 * math.pi / (t["ell"][ok] * (t["ell"][ok] + 1))
    err = t["residual_dl_std"][ok] * to_cl / math.sqrt(ev.n_patches)
    cl = t["residual_dl_mean"][ok] * to_cl
    white = sigma**2 * ev.estimator.geometry.pixel_area_sr
    assert np.all(np.abs(cl - white) < 4 * err)  # flat at σ² Ω_pix within the scatter, every bin
    assert abs(np.mean(cl) / white - 1) < 0.03
    assert np.mean(np.abs(cl - 1.3 * white) > 4 * err) > 0.5  # a 30 % wrong level would be seen


def test_noise_test_scales_the_stored_noise(stores):
    ev = evaluate_dataset(stores["noisy"], {"target-band": TargetBandSeparator()}, CONFIG, progress=False)
    sigma = ev.info.noise_uk_per_pixel[ev.info.target_channel]
    noise = method_summary(ev, "target-band", CONFIG)["noise"]
    assert set(noise) == {"1", "5", "10"}
    for factor, entry in noise.items():
        assert entry["n_patches"] == CONFIG.noise_max_patches
        assert entry["residual_rms_mean_uk"] == pytest.approx(float(factor) * sigma, rel=0.03)


def test_dust_bins_and_contaminated_patch(stores):
    ev = evaluate_dataset(stores["sky"], {"target-band": TargetBandSeparator()}, CONFIG, progress=False)
    store = DatasetStore.open(stores["sky"])
    d = ev.info.band_names.index("353")
    dust = store.array("components/dust")[:, d].reshape(ev.n_patches, -1).astype(np.float64)
    assert np.allclose(ev.dust_brightness_uk, dust.std(axis=1), rtol=1e-6)
    s = method_summary(ev, "target-band", CONFIG)
    assert sum(b["n_patches"] for b in s["by_dust"]) == ev.n_patches
    c = s["contaminated_patch"]
    assert c["index"] == int(np.argmax(ev.contamination))
    assert c["contamination_dl"] == pytest.approx(float(np.max(ev.contamination)))
    assert set(ev.components) >= {"dust", "radio", "infrared_galaxies", "point_sources", "noise"}
    # contamination: D_ℓ of the point sources alone (the only non-dust foregrounds here), 1500–3000
    t = ev.info.target_channel
    sources = store.array("components/radio")[:, t] + store.array("components/infrared_galaxies")[:, t]
    cl = ev.estimator(torch.from_numpy(sources)).numpy()
    keep = (ev.ell >= 1500) & (ev.ell < 3000) & np.isfinite(cl[0])
    expected = np.mean(cl[:, keep] * ev.ell[keep] * (ev.ell[keep] + 1) / (2 * np.pi), axis=1)
    assert np.allclose(ev.contamination, expected, rtol=1e-3)
    # the residual of "no separation" is minus the foregrounds and noise: its RMS matches theirs
    inputs, target = store.array("inputs")[:, ev.info.target_channel], store.array("target")[:, 0]
    fg = (inputs - target).reshape(ev.n_patches, -1).astype(np.float64)
    rms = np.sqrt(np.mean(fg**2, axis=1))
    assert s["pixel"]["residual_rms_mean_uk"] == pytest.approx(rms.mean(), rel=1e-5)


def test_dataset_names_and_bad_settings(stores, tmp_path):
    assert dataset_name(DatasetStore.open(stores["clean"])) == "high"
    ev = evaluate_dataset(stores["clean"], {"target-band": TargetBandSeparator()},
                          EvaluationConfig(max_patches=4, noise_factors=[]), progress=False)
    assert ev.n_patches == 4 and ev.noise["target-band"] == {}
    with pytest.raises(ValueError, match="dust_band"):
        evaluate_dataset(stores["clean"], {}, EvaluationConfig(dust_band="100"), progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        build_separator("smica-xl")
    with pytest.raises(ValueError, match="lo < hi"):
        EvaluationConfig(ell_ranges={"bad": [2000.0, 1000.0]})
