"""The report's opening and closing: paths as the report names them, the settings tables."""

from pathlib import Path

from cenn.evaluate.overview import method_settings_table, report_path, summary_text
from cenn.pretrained import SHIPPED, default_weights, shipped_name


def test_shipped_weights_are_named_and_other_paths_made_relative(tmp_path):
    home = tmp_path / "reports" / "r1"
    assert report_path(default_weights(), home) == "reference (shipped with cenn)"
    assert shipped_name(default_weights()) == "reference"
    assert shipped_name(tmp_path / SHIPPED["reference"]) is None  # same file name, not the shipped file
    assert report_path(tmp_path / "run" / "weights.safetensors", home) == "../../run/weights.safetensors"
    assert report_path(home / "in.zarr", home) == "in.zarr"


def test_method_settings_table_has_a_row_per_setting_and_no_absolute_path(tmp_path):
    methods = {"cenn": {"name": "cenn", "weights": str(tmp_path / "w.safetensors"), "epochs": None,
                        "precision": "32"},
               "nilc": {"name": "nilc", "ell_peaks": [100, 400], "max_gain": 10.0},
               "target-band": {"name": "target-band"}}
    header, rows = method_settings_table(methods, tmp_path / "report")
    assert header == ["method", "setting", "value"]
    assert rows == [["cenn", "weights", "../w.safetensors"], ["cenn", "epochs", "–"],
                    ["cenn", "precision", "32"], ["nilc", "ell_peaks", "100, 400"],
                    ["nilc", "max_gain", "10.0"], ["target-band", "–", "–"]]
    assert not any(Path(cell).is_absolute() for row in rows for cell in row)


def _result(rms_uk: float, residual_dl: float) -> dict:
    ell = [100.0, 500.0, 1500.0, 2400.0, 3000.0]
    return {"pixel": {"residual_rms_mean_uk": rms_uk},
            "per_bin": {"ell": ell, "residual_dl_mean": [99.0, residual_dl, residual_dl, residual_dl, 99.0],
                        "delta_dl_mean": [0.0] * 5, "transfer": [1.0] * 5}}


def test_summary_says_what_ran_and_which_method_leaves_the_smallest_residual():
    metrics = {"cenn_version": "9.9", "created": "2026-12-06",
               "datasets": {"high": {"n_patches": 32}, "north": {"n_patches": 8}},
               "results": {"ilc": {"high": _result(40.0, 12.0), "north": _result(30.0, 5.0)},
                           "cenn": {"high": _result(9.0, 2.5), "north": _result(float("nan"), 1.0)}}}
    run, found = summary_text(metrics)
    assert run == ("cenn 9.9 separated the CMB with 2 methods (ilc, cenn) on 2 datasets: "
                   "high (30° < |b| < 90°, 32 patches), north (8 patches) (2026-12-06).")
    assert found.startswith(
        "On high, cenn leaves the smallest residual: 9 µK RMS per patch and a residual D_ℓ of 2.5 µK² over "
        "300 ≤ ℓ < 2500 (against ilc 40 µK). On north, ilc leaves the smallest residual: 30 µK RMS per "
        "patch and a residual D_ℓ of 5 µK² over 300 ≤ ℓ < 2500 (against cenn – µK).")
