"""The Wiener filter (oracle): the minimum-variance linear estimate of the CMB label from the bands,
mode by mode, given the true band-band spectra of the CMB and of everything else.

Per Fourier mode of multipole bin b, with d the bands' modes, S the CMB's band-band spectrum (each
band at its own beam), N that of the foregrounds and noise, G the cross spectrum of the label with
the CMB in each band and T the label's spectrum, the estimate is ŷ = G (S + N)⁻¹ d and its residual
power T − G (S + N)⁻¹ Gᵀ. On Gaussian components no linear method does better; it is reported so
the network's gain over linear methods can be seen. The spectra are measured on simulations of the
same sky model and region as the evaluated data (other realisations): the filter knows the truth's
statistics, which no real analysis does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from cenn.baselines.common import patch_geometry
from cenn.separation import InputInfo, Separator, register_separator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import Binning
from cenn.sky.simulator import PatchSimulator, SimulationConfig


@dataclass
class WienerModel:
    """Binned spectra (µK² sr, per band at its beam) defining the filter.

    Attributes:
        edges: multipole bin edges ``(B + 1,)``.
        label: label auto spectrum T ``(B,)``.
        signal: CMB band-band spectra S ``(B, C, C)``.
        target_cross: label × CMB-in-band spectra G ``(B, C)``.
        contaminants: foregrounds-and-noise band-band spectra N ``(B, C, C)``.
    """

    edges: torch.Tensor
    label: torch.Tensor
    signal: torch.Tensor
    target_cross: torch.Tensor
    contaminants: torch.Tensor

    def filters(self) -> torch.Tensor:
        """Per bin, the weights G (S + N)⁻¹ applied to the bands' modes: ``(B, C)``."""
        m = self.signal + self.contaminants
        # a bin without modes (all zero) gets zero weights; loading keeps the solve defined
        loading = 1e-12 * torch.diagonal(m, dim1=-2, dim2=-1).mean(-1) + torch.finfo(m.dtype).tiny
        m = m + loading[:, None, None] * torch.eye(m.shape[-1], dtype=m.dtype)
        return torch.linalg.solve(m, self.target_cross[..., None])[..., 0]  # M symmetric: (M⁻¹Gᵀ)ᵀ

    def residual_spectrum(self) -> torch.Tensor:
        """Expected residual power per bin T − G (S + N)⁻¹ Gᵀ: ``(B,)``."""
        return self.label - (self.filters() * self.target_cross).sum(-1)

    def bins_of(self, ell: torch.Tensor) -> torch.Tensor:
        """Bin index of every multipole in ``ell`` (clamped to the first and last bins)."""
        return Binning.from_edges(self.edges.tolist()).index(ell).clamp(0, len(self.label) - 1)

    @classmethod
    def from_maps(cls, inputs: torch.Tensor, cmb: torch.Tensor, label: torch.Tensor, pixel_arcsec: float,
                  bin_width: float) -> WienerModel:
        """Measure the spectra from patches: ``inputs`` and the CMB in each band ``cmb``
        ``(N, C, n, n)`` and the ``label (N, n, n)``, all µK; bins of width ``bin_width``."""
        acc = _SpectraSums(PatchGeometry(inputs.shape[-1], pixel_arcsec), bin_width, inputs.device)
        acc.add(inputs, cmb, label)
        return acc.model()

    @classmethod
    def from_simulation(cls, config: SimulationConfig, n_patches: int, bin_width: float,
                        device: str | torch.device = "cpu", batch_size: int = 32) -> WienerModel:
        """Measure the spectra on ``n_patches`` patches simulated with ``config``."""
        sim = PatchSimulator(config, device)
        acc = _SpectraSums(sim.geometry, bin_width, sim.device)
        for start in range(0, n_patches, batch_size):
            batch = sim.simulate(range(start, min(n_patches, start + batch_size)), with_components=True)
            acc.add(batch.inputs, batch.components["cmb"], batch.target[:, 0])
        return acc.model()


class _SpectraSums:
    """Sums over patches of the binned cross spectra a :class:`WienerModel` needs."""

    def __init__(self, geometry: PatchGeometry, bin_width: float, device: torch.device):
        ell = geometry.ell(device).flatten()
        self.binning = Binning.linear(0.0, float(ell.max()) + bin_width, bin_width)
        self.edges = torch.tensor(self.binning.edges, dtype=torch.float64)
        self.idx = self.binning.index(ell)
        self.counts = self.binning.sums(torch.ones_like(ell), self.idx).clamp_min(1)
        self.norm = geometry.pixel_area_sr / geometry.npix**2
        self.sums: dict[str, torch.Tensor] = {}
        self.patches = 0

    def _cross(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Σ over patches, per bin, of Re(a b*) for modes ``(N, M)``: ``(B,)``."""
        return self.binning.sums((a * b.conj()).real.sum(0), self.idx)

    def add(self, inputs: torch.Tensor, cmb: torch.Tensor, label: torch.Tensor) -> None:
        def modes(x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft2(x.to(torch.float64)).flatten(-2)

        d, s, t = modes(inputs), modes(cmb), modes(label)
        rest = d - s
        c = d.shape[1]
        terms = {"label": self._cross(t, t),
                 "signal": torch.stack([torch.stack([self._cross(s[:, i], s[:, j]) for j in range(c)], -1)
                                        for i in range(c)], -2),
                 "target_cross": torch.stack([self._cross(t, s[:, i]) for i in range(c)], -1),
                 "contaminants": torch.stack([torch.stack([self._cross(rest[:, i], rest[:, j])
                                                           for j in range(c)], -1) for i in range(c)], -2)}
        for k, v in terms.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.patches += d.shape[0]

    def model(self) -> WienerModel:
        def mean(v: torch.Tensor) -> torch.Tensor:
            counts = self.counts.to(v.device).reshape(-1, *([1] * (v.ndim - 1)))
            return (v / counts * self.norm / self.patches).cpu()

        return WienerModel(edges=self.edges, **{k: mean(v) for k, v in self.sums.items()})


@register_separator("wiener")
class WienerSeparator(Separator):
    """The oracle Wiener filter (see the module docstring).

    Args:
        calibration_patches: patches simulated per dataset to measure the spectra.
        bin_width: Δℓ of the spectra's bins.
        seed_offset: the calibration simulations use the dataset's seed plus this, so they are other
            realisations of the same sky model and region.
        device: where calibration patches are simulated.
    """

    name = "wiener"

    def __init__(self, calibration_patches: int = 256, bin_width: float = 50.0, seed_offset: int = 7919,
                 device: str = "cpu", model: WienerModel | None = None):
        if calibration_patches < 1 or bin_width <= 0:
            raise ValueError("calibration_patches must be >= 1 and bin_width positive")
        self.calibration_patches, self.bin_width = calibration_patches, bin_width
        self.seed_offset, self.device, self.model = seed_offset, device, model

    def prepare(self, meta: dict[str, Any]) -> None:
        """Measure the spectra on simulations of the dataset's sky model and region."""
        config = SimulationConfig.from_stored({**meta["config"], "seed": meta["seed"] + self.seed_offset})
        self.model = WienerModel.from_simulation(config, self.calibration_patches, self.bin_width,
                                                 self.device)

    def separate(self, inputs: torch.Tensor, info: InputInfo,
                 noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        if self.model is None:
            raise ValueError("the Wiener filter needs the data's spectra: call prepare(store.meta) first, "
                             "or build it with a WienerModel")
        n = inputs.shape[-1]
        ell = patch_geometry(inputs, info).ell(inputs.device)
        weights = self.model.filters().to(inputs.device)[self.model.bins_of(ell)]  # (n, m, C)
        fourier = torch.fft.rfft2(inputs.to(torch.float64))
        out = torch.einsum("hwc,nchw->nhw", weights.to(fourier.dtype), fourier)
        return torch.fft.irfft2(out, s=(n, n))[:, None].to(torch.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "calibration_patches": self.calibration_patches,
                "bin_width": self.bin_width, "seed_offset": self.seed_offset}
