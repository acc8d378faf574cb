"""Plain-text labels of the report: dataset names as latitude ranges and numbers to three figures."""

from __future__ import annotations

import numpy as np

DATASET_TEXT = {"all": "all sky", "inner": "0° < |b| < 5°", "intermediate": "5° < |b| < 30°",
                "high": "30° < |b| < 90°"}


def dataset_text(name: str) -> str:
    """Plain-text label of a dataset for tables (its latitude range), else its name."""
    return DATASET_TEXT.get(name, name)


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures; "–" for None, NaN or infinity."""
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"
