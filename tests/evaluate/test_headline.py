"""The headline figures of a comparison, read from metrics.json entries, and their table."""

import pytest

from cenn.evaluate.report import headline_table
from cenn.evaluate.summary import headline_figures


def _result(scale: float) -> dict:
    ell = [100.0, 400.0, 1000.0, 1600.0, 2400.0, 3000.0]
    return {"pixel": {"residual_rms_mean_uk": 10.0 * scale},
            "per_bin": {"ell": ell, "residual_dl_mean": [1e4, 10.0, 20.0, 30.0, 40.0, 1e4],
                        "delta_dl_mean": [5.0, -1.0, -2.0, -3.0, -4.0, 5.0],
                        "transfer": [1.0, 0.99, 0.9, 0.6, None, 0.1]}}


def test_headline_figures_average_300_to_2500_and_read_the_nearest_transfer_bins():
    figures = headline_figures(_result(1.0))
    assert figures["residual_rms_uk"] == 10.0
    assert figures["residual_dl_uk2"] == pytest.approx(25.0)  # bins at 400, 1000, 1600, 2400 only
    assert figures["delta_dl_uk2"] == pytest.approx(-2.5)
    assert figures["t_500"] == 0.99 and figures["t_1500"] == 0.6
    assert figures["t_2500"] != figures["t_2500"]  # an empty bin is NaN, not a number


def test_headline_table_has_a_row_per_method_and_a_column_per_dataset():
    rows = {"nilc": {"all": headline_figures(_result(1.0)), "high": headline_figures(_result(2.0))},
            "cenn": {"all": headline_figures(_result(0.5)), "high": headline_figures(_result(0.25))}}
    lines = headline_table(rows).splitlines()
    assert lines[0].startswith("| method | RMS all [µK] | RMS high [µK] | res. D_ℓ all")
    assert lines[2].startswith("| nilc | 10.0 | 20.0 | 25.0 | 25.0 | -2.5 | 0.990 / 0.600 / nan |")
    assert lines[3].startswith("| cenn | 5.0 | 2.5 |")
