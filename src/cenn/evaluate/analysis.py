"""One pass over a dataset store: every separator applied batch by batch, per-patch spectra and
residual metrics kept, so the paper's Sect. 4 analysis (and more) can be summarised afterwards.

Memory stays bounded: maps are read ``batch_size`` patches at a time; what is kept per patch is a
few spectra of ``n_bins`` values and a few numbers, plus one running residual sum per method and,
for methods that state a per-pixel σ, fixed-size calibration counts (:mod:`cenn.evaluate.calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cenn.data.store import DatasetStore, open_finished
from cenn.evaluate.calibration import CalibrationStats
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.half_split import HalfSplitStats, separate_halves
from cenn.evaluate.injection import injected_cmb, injection_simulator
from cenn.evaluate.metrics import PIXEL_METRICS, in_range, pixel_metrics
from cenn.evaluate.metrics import nan_array as _nan
from cenn.evaluate.polarization import PolarizationEvaluation, polarization_evaluation
from cenn.separation import InputInfo, Separator
from cenn.sky.flat.eb_spectra import EBSpectra
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.spectra import SpectrumEstimator, cl_to_dl
from cenn.sky.simulator import LATITUDE_BANDS

#: Stored components summed into one curve of the paper's Fig. 5 ("PS": radio and IR galaxies).
COMPONENT_GROUPS = {"point_sources": ("radio", "infrared_galaxies")}


class ResidualStats:
    """Per-patch spectra and residual metrics of one method on one dataset (filled by batches).

    Attributes (D_ℓ in µK², metrics in µK; one row per patch):
        output, cross, residual: D_ℓ of the output, of output × target, of target − output.
        response: D_ℓ of (output with an injected CMB − output) × that CMB (NaN without injection).
        pixel: :func:`pixel_metrics` per patch.
        residual_sum: Σ over patches of the residual map (µK), for the mean residual patch.
    """

    def __init__(self, n: int, n_bins: int, shape: tuple[int, int]):
        self.output, self.cross, self.residual = _nan(n, n_bins), _nan(n, n_bins), _nan(n, n_bins)
        self.response = _nan(n, n_bins)
        self.pixel = {k: _nan(n) for k in PIXEL_METRICS}
        self.residual_sum = np.zeros(shape)
        self.filled = 0

    def add(self, rows: slice, estimator: SpectrumEstimator, f_target: torch.Tensor,
            target: torch.Tensor, output: torch.Tensor) -> None:
        """Record patches ``rows``: ``target`` and ``output`` ``(B, H, W)`` in µK, ``f_target`` the
        target's Fourier modes from ``estimator``."""
        dl = _dl(estimator)
        f_out = estimator.fourier(output)
        self.output[rows] = dl(estimator.binned(f_out))
        self.cross[rows] = dl(estimator.binned(f_out, f_target))
        self.residual[rows] = dl(estimator.binned(f_target - f_out))
        for k, v in pixel_metrics(target, output).items():
            self.pixel[k][rows] = v.cpu().numpy()
        self.residual_sum += (target.double() - output.double()).sum(0).cpu().numpy()
        self.filled += target.shape[0]

    def add_response(self, rows: slice, estimator: SpectrumEstimator, f_injected: torch.Tensor,
                     change: torch.Tensor) -> None:
        """Record the output's ``change (B, H, W)`` µK when the CMB with Fourier modes ``f_injected``
        (at the target band) was added to the inputs of patches ``rows``."""
        self.response[rows] = _dl(estimator)(estimator.binned(estimator.fourier(change), f_injected))

    @property
    def mean_residual_patch(self) -> np.ndarray:
        """The residual averaged over patches ``(H, W)`` in µK (the paper's Table 1 patch)."""
        return self.residual_sum / max(self.filled, 1)


@dataclass
class PatchMaps:
    """One patch at the target band (µK): the observed map, the CMB label, each method's output."""

    index: int
    lat: float
    lon: float
    total: np.ndarray
    target: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DatasetEvaluation:
    """Everything measured on one dataset (see :func:`evaluate_dataset`).

    Attributes (per patch, D_ℓ in µK² at the target band):
        cmb: D_ℓ of the CMB label.
        injected: D_ℓ of the injected CMB at the target band (NaN without injection).
        foregrounds: D_ℓ of all foregrounds (input − CMB − noise; without stored components,
            input − label, which includes the noise: see ``foreground_source``).
        components: D_ℓ of each stored component (and group, e.g. point sources).
        contamination: small-scale contamination, the mean D_ℓ over ``config.contamination_ell`` of
            the foregrounds other than Galactic dust (point sources, CIB, tSZ; with dust when the
            store has no dust map).
        dust_brightness_uk: RMS of the dust map at ``config.dust_band`` (``dust_source``).
        methods: per method, nominal :class:`ResidualStats`.
        noise: per method and noise factor, :class:`ResidualStats` on the first patches.
        examples: ``"example"`` (config.example_patch) and ``"contaminated"`` patches' maps.
        calibration: per method that states a per-pixel σ of its residual
            (:meth:`Separator.separate_with_sigma`), its :class:`CalibrationStats`; other methods
            are absent.
        half_split: per method, its spectra on the store's two half-mission maps
            (:class:`HalfSplitStats`); empty when the store has none or ``config.half_split`` is off.
        polarization: on a store with Q and U (``stokes = "IQU"``), their evaluation
            (:mod:`cenn.evaluate.polarization`); None on a temperature-only store.
    """

    name: str
    path: str
    meta: dict[str, Any]
    info: InputInfo
    estimator: SpectrumEstimator
    cmb: np.ndarray
    injected: np.ndarray
    foregrounds: np.ndarray
    components: dict[str, np.ndarray]
    contamination: np.ndarray
    dust_brightness_uk: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    foreground_source: str
    dust_source: str
    methods: dict[str, ResidualStats]
    noise: dict[str, dict[float, ResidualStats]]
    examples: dict[str, PatchMaps] = field(default_factory=dict)
    calibration: dict[str, CalibrationStats] = field(default_factory=dict)
    half_split: dict[str, HalfSplitStats] = field(default_factory=dict)
    polarization: PolarizationEvaluation | None = None

    @property
    def n_patches(self) -> int:
        return len(self.cmb)

    @property
    def ell(self) -> np.ndarray:
        return self.estimator.ell


def _dl(estimator: SpectrumEstimator):
    centres = torch.as_tensor(estimator.ell)

    def to_dl(cl: torch.Tensor) -> np.ndarray:
        return cl_to_dl(centres.to(cl.device), cl).cpu().numpy()

    return to_dl


def dataset_name(store: DatasetStore) -> str:
    """The paper's name for a store's latitude region (``all``, ``inner``, ``intermediate``,
    ``high``) when it matches one, else the store's file name."""
    region = store.meta.get("config", {}).get("region", {})
    bounds = (region.get("lat_min"), region.get("lat_max"))
    for name, band in LATITUDE_BANDS.items():
        if tuple(band) == bounds:
            return name
    return store.path.name.removesuffix(".zarr")


class _Reader:
    """Batches of a store as tensors on ``device``."""

    def __init__(self, store: DatasetStore, device: torch.device):
        self.store, self.device = store, device
        self.components = list(store.meta.get("components", []))

    def read(self, name: str, rows: slice) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.store.read(name, rows))).to(self.device)

    def component(self, name: str, rows: slice) -> torch.Tensor | None:
        return self.read(f"components/{name}", rows) if name in self.components else None

    def noise_sigma(self, rows: slice) -> torch.Tensor:
        """The patches' per-pixel noise σ (µK_CMB; nominal for stores without it)."""
        return torch.from_numpy(np.ascontiguousarray(self.store.noise_sigma(rows))).to(self.device)


def evaluate_dataset(
    path: Path | str,
    separators: Mapping[str, Separator],
    config: EvaluationConfig,
    name: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> DatasetEvaluation:
    """Apply every separator to the store at ``path`` and measure (see :class:`DatasetEvaluation`)."""
    device = torch.device(device)
    store = open_finished(path, "a store to evaluate", checksums=True)
    meta, info = store.meta, InputInfo.from_store_meta(store.meta)
    geometry = PatchGeometry(meta["geometry"]["npix"], meta["geometry"]["pixel_arcsec"])
    binning = config.binning(geometry)
    estimator = SpectrumEstimator(
        geometry, binning, config.taper_width(geometry),
        beam_fwhm_arcmin=info.target_beam_fwhm_arcmin if config.deconvolve_beam else None,
        pixel_window=config.pixel_window, device=device)
    for sep in separators.values():
        sep.prepare(meta)
    reader = _Reader(store, device)
    n = store.n_patches if config.max_patches == 0 else min(store.n_patches, config.max_patches)
    nb, t = binning.n_bins, info.target_channel
    if config.dust_band not in info.band_names:
        raise ValueError(f"dust_band {config.dust_band!r} is not one of the bands {list(info.band_names)}")
    d = info.band_names.index(config.dust_band)
    has = set(reader.components)
    foreground_source = "input - cmb - noise" if {"cmb", "noise"} <= has else "input - label (with noise)"
    dust_source = "dust" if "dust" in has else "input (no dust component stored)"
    names = [c for c in reader.components if c != "cmb"]
    groups = {g: parts for g, parts in COMPONENT_GROUPS.items() if set(parts) <= has}
    n_noise = n if config.noise_max_patches == 0 else min(n, config.noise_max_patches)
    factors = config.noise_factors if "noise" in has else []

    ev = DatasetEvaluation(
        name=name or dataset_name(store), path=str(path), meta=meta, info=info, estimator=estimator,
        cmb=_nan(n, nb), injected=_nan(n, nb), foregrounds=_nan(n, nb),
        components={c: _nan(n, nb) for c in [*names, *groups]}, contamination=_nan(n),
        dust_brightness_uk=_nan(n), lat=store.read("lat", slice(n)), lon=store.read("lon", slice(n)),
        foreground_source=foreground_source, dust_source=dust_source,
        methods={m: ResidualStats(n, nb, geometry.shape) for m in separators},
        noise={m: {f: ResidualStats(n_noise, nb, geometry.shape) for f in factors} for m in separators},
        half_split=({m: HalfSplitStats(n, nb) for m in separators}
                    if config.half_split and store.has_splits else {}),
    )
    if store.stokes == "IQU":
        beam = info.target_beam_fwhm_arcmin
        spectra = EBSpectra(geometry, binning, config.taper_width(geometry),
                            beam_fwhm_arcmin=beam if config.deconvolve_beam else None, device=device)
        ev.polarization = polarization_evaluation(separators, spectra, ev.lat, beam, geometry.shape,
                                                  half_split=bool(ev.half_split))
    injector = (injection_simulator(meta, config.injection_seed, device)
                if config.injection and separators else None)
    dl = _dl(estimator)
    contamination_bins = in_range(estimator.ell, *config.contamination_ell)
    bar = tqdm(total=n, unit="patch", desc=f"evaluate {ev.name}", disable=not progress)
    for start in range(0, n, config.batch_size):
        rows = slice(start, min(n, start + config.batch_size))
        inputs, target = reader.read("inputs", rows), reader.read("target", rows)[:, 0]
        sigma = reader.noise_sigma(rows)
        f_target = estimator.fourier(target)
        ev.cmb[rows] = dl(estimator.binned(f_target))
        comps = {c: reader.component(c, rows) for c in [*names, "cmb"] if c in has}
        for c in names:
            ev.components[c][rows] = dl(estimator.binned(estimator.fourier(comps[c][:, t])))
        for g, parts in groups.items():
            summed = sum(comps[p][:, t] for p in parts)
            ev.components[g][rows] = dl(estimator.binned(estimator.fourier(summed)))
        if {"cmb", "noise"} <= has:
            fg = inputs[:, t] - comps["cmb"][:, t] - comps["noise"][:, t]
        else:
            fg = inputs[:, t] - target
        ev.foregrounds[rows] = dl(estimator.binned(estimator.fourier(fg)))
        compact = fg - comps["dust"][:, t] if "dust" in has else fg
        compact_dl = dl(estimator.binned(estimator.fourier(compact)))
        ev.contamination[rows] = np.nanmean(compact_dl[:, contamination_bins], axis=1)
        dust = comps["dust"][:, d] if "dust" in has else inputs[:, d]
        ev.dust_brightness_uk[rows] = dust.double().flatten(1).std(1, correction=0).cpu().numpy()
        separated = {m: sep.separate_with_sigma(inputs, info, sigma) for m, sep in separators.items()}
        outputs = {m: out[:, 0] for m, (out, _) in separated.items()}
        for m, output in outputs.items():
            ev.methods[m].add(rows, estimator, f_target, target, output)
        if ev.polarization is not None:
            ev.polarization.add(rows, separators, info, reader.read("polarization", rows),
                                reader.read("target_polarization", rows), sigma, target, outputs,
                                reader.read("polarization_splits", rows) if ev.half_split else None)
        _add_calibration(ev, {m: s for m, (_, s) in separated.items()}, target, outputs, config, start == 0)
        if injector is not None:
            injected = injected_cmb(injector, rows)
            f_injected = estimator.fourier(injected.target[:, 0])
            ev.injected[rows] = dl(estimator.binned(f_injected))
            for m, sep in separators.items():
                change = sep.separate(inputs + injected.inputs, info, sigma)[:, 0] - outputs[m]
                ev.methods[m].add_response(rows, estimator, f_injected, change)
        if ev.half_split:
            halves = separate_halves(separators, reader.read("splits", rows), info, sigma)
            for m, (first, second) in halves.items():
                ev.half_split[m].add(rows, estimator, first, second)
        if start < n_noise:
            keep = slice(0, min(rows.stop, n_noise) - start)
            sub = slice(start, start + keep.stop)
            for f in factors:
                noisy = inputs[keep] + (f - 1.0) * comps["noise"][keep]
                for m, sep in separators.items():
                    ev.noise[m][f].add(sub, estimator, f_target[keep], target[keep],
                                       sep.separate(noisy, info, f * sigma[keep])[:, 0])
        bar.update(rows.stop - rows.start)
    bar.close()
    example = min(config.example_patch, n - 1)
    contaminated = int(np.nanargmax(ev.contamination))
    for label, index in (("example", example), ("contaminated", contaminated)):
        ev.examples[label] = _patch_maps(reader, index, info, separators)
    return ev


def _add_calibration(ev: DatasetEvaluation, stated: Mapping[str, torch.Tensor | None], target: torch.Tensor,
                     outputs: Mapping[str, torch.Tensor], config: EvaluationConfig, first: bool) -> None:
    """Count one batch into ``ev.calibration`` for each method that stated a σ ``(B, 1, H, W)`` µK
    (``stated[m]``), with every other method's output (``(B, H, W)``) for the in-mask comparison."""
    for m, err in stated.items():
        if first and err is not None:
            ev.calibration[m] = CalibrationStats(config.mask_above_uk)
        if (err is not None) != (m in ev.calibration):
            raise ValueError(f"method {m!r} stated a σ for some batches and not for others")
        if err is not None:
            others = {o: out for o, out in outputs.items() if o != m}
            ev.calibration[m].add(target, outputs[m], err[:, 0], others)


def _patch_maps(reader: _Reader, index: int, info: InputInfo,
                separators: Mapping[str, Separator]) -> PatchMaps:
    rows = slice(index, index + 1)
    inputs, target = reader.read("inputs", rows), reader.read("target", rows)
    sigma = reader.noise_sigma(rows)
    t = info.target_channel
    maps = PatchMaps(index=index, lat=float(reader.store.read("lat", index)),
                     lon=float(reader.store.read("lon", index)),
                     total=inputs[0, t].cpu().numpy(), target=target[0, 0].cpu().numpy())
    for m, sep in separators.items():
        maps.outputs[m] = sep.separate(inputs, info, sigma)[0, 0].cpu().numpy()
    return maps
