"""Internal linear combination: per patch in pixel space (``ilc``) and per multipole bin in Fourier
space (``hilc``).

The bands are first brought to the target band's beam; the CMB then has unit response in all of
them, and the weights w = C⁻¹a / (aᵀC⁻¹a) minimise the output variance under Σw = 1, so the CMB
passes unchanged and the foregrounds and noise are reduced as far as one set of weights allows.
"""

from __future__ import annotations

from typing import Any

import torch

from cenn.baselines.common import patch_ilc_weights, to_maps, to_target_beam, with_patch_mean
from cenn.model.linear import harmonic_ilc
from cenn.separation import InputInfo, Separator, register_separator
from cenn.sky.flat.spectra import Binning

#: Default cap on the beam-matching gain (143 → 217 GHz reaches it near ℓ ≈ 4600).
MAX_GAIN = 100.0
COVARIANCES = ("patch", "batch")


def _check_covariance(covariance: str) -> None:
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")


@register_separator("ilc")
class ILCSeparator(Separator):
    """Pixel-space ILC: one weight per band and patch from the patch's band-band covariance.

    Args:
        max_gain: cap on the beam-matching factor B_target/B_band.
    """

    name = "ilc"
    stokes_agnostic = True

    def __init__(self, max_gain: float = MAX_GAIN):
        self.max_gain = max_gain
        self.last_weights: torch.Tensor | None = None  # (N, C) of the last call, for inspection

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        fourier, _ = to_target_beam(inputs, info, self.max_gain)
        maps = to_maps(fourier, inputs.shape[-1])  # (N, C, n, n)
        self.last_weights = patch_ilc_weights(maps)
        out = torch.einsum("nc,nchw->nhw", self.last_weights, maps)
        return out[:, None].to(torch.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "max_gain": self.max_gain}


@register_separator("hilc")
class HarmonicILCSeparator(Separator):
    """Harmonic ILC: weights per multipole bin from the Fourier-space covariance of the patch
    (``covariance="patch"``) or of all patches passed together (``"batch"``). The ℓ = 0 mode (the
    patch mean) stays out of the bins and is combined with the patch's ILC weights, as in ``ilc``.

    Args:
        bin_width: width Δℓ of the multipole bins in which weights are computed.
        covariance: "patch" or "batch".
        max_gain: cap on the beam-matching factor B_target/B_band.
    """

    name = "hilc"
    stokes_agnostic = True

    def __init__(self, bin_width: float = 100.0, covariance: str = "patch", max_gain: float = MAX_GAIN):
        if bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {bin_width}")
        _check_covariance(covariance)
        self.bin_width, self.covariance, self.max_gain = bin_width, covariance, max_gain

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        fourier, ell = to_target_beam(inputs, info, self.max_gain)  # (N, C, n, m)
        fluctuations = fourier.clone()
        fluctuations[..., 0, 0] = 0.0  # the mean is combined apart (with_patch_mean)
        flat = ell.flatten()
        bins = Binning.linear(0.0, float(flat.max()) + self.bin_width, self.bin_width).index(flat)
        bins[0] = bins[1]  # ℓ = 0 (zeroed) joins the lowest multipole's bin: alone, its weights are NaN
        out = harmonic_ilc(fluctuations, bins, pooled=self.covariance == "batch")
        return to_maps(with_patch_mean(out, fourier), inputs.shape[-1])[:, None].to(torch.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "bin_width": self.bin_width, "covariance": self.covariance,
                "max_gain": self.max_gain}
