"""Checks on the values of maps: real numbers (:func:`check_real`), finite inputs
(:func:`check_finite`, or NaN filled: :func:`fill_nonfinite_pixels`) and finite outputs
(:func:`check_finite_output`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def check_real(dtype: np.dtype | torch.dtype, source: str) -> None:
    """Refuse ``source`` (a file or "the inputs") whose values of ``dtype`` are not real numbers:
    complex values (whose imaginary part would be dropped), booleans, strings, objects."""
    if isinstance(dtype, torch.dtype):
        real = not dtype.is_complex and dtype != torch.bool
    else:
        real = dtype.kind in "iuf"
    if real:
        return
    name = str(dtype).removeprefix("torch.")
    fix = ("; cenn would drop the imaginary part: if it is zero, save numpy.real of the maps"
           if "complex" in name else "")
    raise ValueError(f"{source} holds {name} values, not real numbers: cenn takes real-valued maps in "
                     f"µK_CMB{fix}")


def check_finite(maps: torch.Tensor) -> None:
    """Raise ``ValueError`` naming how many values of ``maps (N, C, H, W)`` are NaN or infinite and
    in which patches."""
    bad = ~torch.isfinite(maps)
    if not bad.any():
        return
    per_patch = bad.flatten(1).sum(dim=1)
    patches = per_patch.nonzero().flatten().tolist()
    shown = ", ".join(str(p) for p in patches[:10]) + (", ..." if len(patches) > 10 else "")
    n_nan = int(torch.isnan(maps).sum())
    raise ValueError(
        f"the inputs hold {int(per_patch.sum())} NaN or infinite values ({n_nan} NaN) in "
        f"{len(patches)} patch(es): {shown}; fill or inpaint the masked pixels, drop those patches, or "
        "let cenn fill them with each patch's median (--fill-nonfinite, fill_nonfinite=True)"
    )


def fill_nonfinite_pixels(maps: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``maps (N, C, H, W)`` with NaN and infinite pixels set to the median of the finite pixels of
    their patch and channel, and the fraction of pixels filled. A patch channel with no finite pixel
    is refused (nothing to fill it from)."""
    bad = ~torch.isfinite(maps)
    if not bad.any():
        return maps, 0.0
    flat = maps.flatten(2)
    empty = bad.flatten(2).all(dim=2)
    if empty.any():
        patch, channel = (int(i) for i in empty.nonzero()[0])
        raise ValueError(f"patch {patch} has no finite pixel in channel {channel}: there is nothing to fill "
                         "it from; drop that patch")
    medians = torch.where(bad.flatten(2), torch.nan, flat).nanmedian(dim=2).values
    filled = torch.where(bad, medians[:, :, None, None], maps)
    return filled, float(bad.float().mean())


def check_finite_output(values: np.ndarray, path: Path) -> None:
    """Refuse to write ``values`` to ``path`` when any is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"refusing to write {path}: the CMB would hold {int(bad.sum())} NaN or infinite values "
            f"({100 * bad.mean():.3g} % of them) although the inputs were finite; check that the inputs "
            "are sky maps in µK_CMB, run in float32 (--precision 32), or use other weights or another method"
        )
