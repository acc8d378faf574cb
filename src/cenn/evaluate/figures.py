"""Publication figures. Maps in µK_CMB; patch axes in pixels, as in the paper's figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_patch_grid(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]],
    column_titles: Sequence[str],
    path: Path | str,
    cmap: str = "RdBu_r",
) -> Path:
    """A grid of patches, one row per label, each map with its own colour bar (µK_CMB).

    Args:
        rows: ``(row label, [map (H, W) per column])``.
        column_titles: one title per column.
        path: PNG file to write.
    """
    n_rows, n_cols = len(rows), len(column_titles)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.6 * n_rows), squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for c, m in enumerate(maps):
            ax = axes[r, c]
            lim = float(np.percentile(np.abs(m), 99.5)) or 1.0
            im = ax.imshow(m, origin="lower", cmap=cmap, vmin=-lim, vmax=lim)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=r"$\mu$K$_{\rm CMB}$")
            if r == 0:
                ax.set_title(column_titles[c])
            if c == 0:
                ax.set_ylabel(f"{label}\ny [pixel]")
            if r == n_rows - 1:
                ax.set_xlabel("x [pixel]")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
