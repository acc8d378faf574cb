"""Running trained weights on maps: the :class:`Predictor`, map files in and out, ``cenn predict``.

Maps go in as ``(N, C, H, W)`` (or one patch ``(C, H, W)``) in µK_CMB at the weights' frequencies,
in the weights' order, and come out as the CMB ``(N, 1, H, W)`` in µK_CMB at the weights' target
band. Inputs are checked against the weights' card before anything runs, and every refusal says
what is wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import math
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cenn import __version__
from cenn.data.normalization import build_normalization
from cenn.data.store import open_finished
from cenn.model.apply import apply_network
from cenn.model.weights import (
    UNITS,
    WeightsCard,
    check_inputs,
    fmt_list,
    load_weights,
    misread_units,
    power_of_ten,
    uk_per_unit,
)
from cenn.outputs import check_writable
from cenn.pretrained import resolve_weights

PRECISIONS = ("32", "bf16")
_NPY = (".npy",)
_FITS = (".fits", ".fits.gz")
SUPPORTED_FILES = (*_NPY, *_FITS)
#: Bands at or above this frequency (GHz) vary more the higher they are (in µK_CMB: dust and noise
#: rise, the CMB stays), which :func:`channel_order_warning` relies on.
_DUST_GHZ = 100.0
#: How many times more than the highest band another band of at least ``_DUST_GHZ`` must vary for
#: :func:`channel_order_warning` to doubt the order (synchrotron alone gives at most ~2 between
#: 143 and 353 GHz).
_ORDER_SPREAD_RATIO = 3.0


class Predictor:
    """Weights loaded once, applied to batches of maps.

    Args:
        weights: a weights file written by :func:`cenn.model.save_weights`.
        device: where the network runs ("cpu", "cuda", ...).
        precision: "32" (float32) or "bf16" (bfloat16 autocast; the output is float32 either way).
        batch_size: patches per forward pass.
    """

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu", precision: str = "32",
                 batch_size: int = 32):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.model, self.card = load_weights(weights, self.device)
        # NHWC is 1.4x faster on the CPU (77 against 56 patches/s for cenn-paper on 2 cores)
        self.channels_last = True
        self.model.to(memory_format=torch.channels_last)
        self.normalization = build_normalization(self.card.normalization, **self.card.normalization_params)

    def predict(
        self,
        inputs: np.ndarray | torch.Tensor,
        frequencies_ghz: list[float],
        pixel_arcsec: float,
        units: str = UNITS,
        fill_nonfinite: bool = False,
    ) -> np.ndarray:
        """The CMB in µK_CMB, float32: ``(N, 1, H, W)`` from ``inputs (N, C, H, W)``, or ``(1, H, W)``
        from one patch ``(C, H, W)``.

        ``inputs`` are maps at ``frequencies_ghz`` (GHz, one per channel) with pixels of side
        ``pixel_arcsec`` (arcsec) in ``units`` (µK_CMB, or K_CMB and mK_CMB converted here). Raises
        ``ValueError`` when they don't suit the weights (see :meth:`check`); NaN or infinite pixels
        are refused unless ``fill_nonfinite``, which fills them (:func:`fill_nonfinite_pixels`) and
        warns with the fraction filled.
        """
        maps = _as_float32_tensor(inputs)
        single = maps.ndim == 3
        if single:
            maps = maps[None]
        factor = uk_per_unit(units)  # converted here; the spread check below catches a wrong label
        if factor != 1.0:
            maps = maps * factor
        if fill_nonfinite and maps.ndim == 4:
            maps, fraction = fill_nonfinite_pixels(maps)
            if fraction > 0:
                warnings.warn(f"{100 * fraction:.4g} % of the input pixels were NaN or infinite and were "
                              "filled with their patch and channel median", stacklevel=2)
        self.check(maps, frequencies_ghz, pixel_arcsec, UNITS, given_units=units)
        out = np.empty((maps.shape[0], 1, *maps.shape[2:]), dtype=np.float32)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            for start in range(0, maps.shape[0], self.batch_size):
                batch = maps[start : start + self.batch_size].to(self.device)
                cmb = apply_network(self.model, self.normalization, batch, self.channels_last)
                out[start : start + len(batch)] = cmb.float().cpu().numpy()
        return out[0] if single else out

    def check(self, maps: torch.Tensor, frequencies_ghz: list[float], pixel_arcsec: float,
              units: str, given_units: str | None = None) -> None:
        """Raise ``ValueError`` unless ``maps (N, C, H, W)`` suit the weights: frequencies, pixel
        size and units as on the card; at least one patch; one channel per frequency; square patches
        whose side is a multiple of the network's; finite values; a spread of sky maps in µK rather
        than K or mK (``given_units``: the units the maps came in before conversion to ``units``)."""
        card = self.card
        if maps.ndim != 4:
            raise ValueError(f"inputs must be (N, C, H, W) or one patch (C, H, W); got shape "
                             f"{tuple(maps.shape)}")
        if maps.numel() == 0:
            raise ValueError(f"the inputs are empty (shape {tuple(maps.shape)}): give at least one patch")
        _, channels, height, width = maps.shape
        if height != width:
            multiple = getattr(self.model, "multiple", 64)
            raise ValueError(f"the patches are {height}×{width} pixels but these weights need square "
                             f"patches: crop or pad them to a square whose side is a multiple of {multiple}")
        check_inputs(card, frequencies_ghz, pixel_arcsec, units, npix=height)
        if channels != card.in_channels:
            raise ValueError(
                f"the inputs have {channels} channels but these weights take {card.in_channels}, one per "
                f"frequency {fmt_list(card.frequencies_ghz)} GHz: give one map per frequency, in that order, "
                "along axis 1 of (N, C, H, W)"
            )
        _check_finite(maps)
        _check_spread(maps, card_target_channel(card), card, given_units or units)


def _as_float32_tensor(inputs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``inputs`` as a float32 CPU tensor (float64, integer and big-endian arrays converted; complex,
    boolean and other non-numeric ones refused)."""
    if isinstance(inputs, torch.Tensor):
        check_real(inputs.dtype, "the inputs")
        return inputs.detach().to("cpu", torch.float32)
    array = np.asarray(inputs)
    check_real(array.dtype, "the inputs")
    array = array.astype(np.float32, copy=False)
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    return torch.from_numpy(array)


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


def _check_finite(maps: torch.Tensor) -> None:
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


def card_target_channel(card: WeightsCard) -> int:
    """Index of the input channel at (or nearest) the card's target frequency."""
    gaps = [abs(f - card.target_frequency_ghz) for f in card.frequencies_ghz]
    return gaps.index(min(gaps))


def _check_spread(maps: torch.Tensor, channel: int, card: WeightsCard, given_units: str) -> None:
    """Raise ``ValueError`` when ``maps (N, C, H, W)`` in µK_CMB, converted from ``given_units``, vary
    as no sky does: the median over patches of the per-patch standard deviation of ``channel`` is 0,
    or says the units are wrong (:func:`~cenn.model.weights.misread_units`)."""
    std = maps[:, channel].flatten(1).double().std(dim=1)
    typical = float(std.median())
    freq = f"{card.frequencies_ghz[channel]:g} GHz"
    if typical == 0:
        raise ValueError(f"the {freq} maps are constant in most patches (median per-patch standard deviation "
                         "0): they hold no sky; check the inputs")
    misread = misread_units(typical, given_units)
    if misread is None:
        return
    factor, units = misread
    if factor <= 1:
        head, fix = ((f"look like µK_CMB labelled {given_units}", "label them uK_CMB (--units uK_CMB)")
                     if factor < 1 else ("do not look like sky maps", "check their units and values"))
        raise ValueError(
            f"the inputs {head}: the {freq} maps vary by {typical:.3g} µK after conversion from "
            f"{given_units} (median per-patch standard deviation), more than any sky; {fix}"
        )
    looks = (f"look like {units}, not {given_units}" if units
             else f"look {power_of_ten(factor)} times too small")
    label = f", or label them {units} (--units {units})" if units else ""
    raise ValueError(
        f"the inputs {looks}: the {freq} maps vary by {typical:.3g} µK (median per-patch standard "
        "deviation) where sky maps vary by tens of µK or more (noise alone does); multiply the maps by "
        f"{power_of_ten(factor)}{label}"
    )


def channel_order_warning(spreads_uk: list[float], frequencies_ghz: list[float],
                          statistic: str) -> str | None:
    """A warning when maps said to be at ``frequencies_ghz`` and varying by ``spreads_uk`` (µK_CMB,
    the ``statistic`` named in the warning) are probably not in that order, else ``None``.

    Among bands of at least 100 GHz, the highest varies most in µK_CMB (dust and noise rise with
    frequency; the CMB is the same in all): a band varying 3 times more than it says the order is
    wrong. Bands in another order whose spreads are alike (a CMB-dominated sky) are not caught.
    """
    dusty = [i for i, f in enumerate(frequencies_ghz) if f >= _DUST_GHZ]
    if len(dusty) < 2:
        return None
    top = max(dusty, key=lambda i: frequencies_ghz[i])
    other = max((i for i in dusty if i != top), key=lambda i: spreads_uk[i])
    if not spreads_uk[other] > _ORDER_SPREAD_RATIO * spreads_uk[top]:
        return None
    return (f"the map given as {frequencies_ghz[top]:g} GHz varies by {spreads_uk[top]:.3g} µK but the one "
            f"given as {frequencies_ghz[other]:g} GHz by {spreads_uk[other]:.3g} µK ({statistic}): above "
            f"{_DUST_GHZ:g} GHz dust and noise make the highest band vary most, so the maps are probably not "
            f"in the order {fmt_list(frequencies_ghz)} GHz; check their order")


def patch_spreads(maps: np.ndarray, max_patches: int = 256) -> list[float]:
    """Per channel, the median over (up to ``max_patches`` evenly spaced) patches of ``maps``
    ``(N, C, H, W)`` or ``(C, H, W)`` of their standard deviation (NaN ignored), in the maps' units."""
    stack = maps.reshape(-1, *maps.shape[-3:])
    sample = stack[:: max(1, len(stack) // max_patches)].astype(np.float64)
    with warnings.catch_warnings():  # channels without finite pixels give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(sample.reshape(*sample.shape[:2], -1), axis=2)
        return [float(v) for v in np.nanmedian(std, axis=0)]


# --- files -----------------------------------------------------------------------------------------

def _kind(path: Path, role: str) -> str:
    """The file type ("npy" or "fits") from its name; ``ValueError`` listing the supported ones
    otherwise."""
    name = path.name.lower()
    if name.endswith(_NPY):
        return "npy"
    if name.endswith(_FITS):
        return "fits"
    raise ValueError(f"{path}: unsupported {role} file type; supported: {', '.join(SUPPORTED_FILES)}"
                     + (" or a dataset store (folder with zarr.json)" if role == "input" else ""))


def _resolve(path: Path, what: str, flag: str, given: Any, found: Any) -> Any:
    """The caller's value when given, else the file's; ``ValueError`` naming ``flag`` if neither."""
    if given is not None:
        return given
    if found is not None:
        return found
    raise ValueError(f"{path} does not say its {what}: pass it with {flag}")


def read_input(
    path: str | Path,
    frequencies_ghz: list[float] | None = None,
    pixel_arcsec: float | None = None,
    units: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Maps ``(N, C, H, W)`` or ``(C, H, W)`` and their ``{frequencies_ghz, pixel_arcsec, units}``.

    ``path`` is a dataset store written by ``cenn simulate`` (its ``inputs``; metadata from the
    store), a ``.npy`` array (frequencies and pixel size must be given; units default to µK_CMB) or
    a FITS file (``.fits``/``.fits.gz``: the primary HDU's image in numpy order, header keys
    ``FREQ1``…``FREQn`` in GHz, ``PIXSIZE`` in arcsec, ``BUNIT``). Values given here override the
    file's.
    """
    path = Path(path)
    if path.is_dir():
        maps, found = _read_store(path)
    elif not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    elif _kind(path, "input") == "npy":
        maps, found = _read_npy(path), {"units": UNITS}
    else:
        maps, found = _read_fits(path)
    check_real(maps.dtype, str(path))
    if maps.size == 0:
        raise ValueError(f"{path} holds an empty array (shape {maps.shape}): it has no patches to separate")
    meta = {
        "frequencies_ghz": _resolve(path, "frequencies", "--frequencies (frequencies_ghz)",
                                    frequencies_ghz, found.get("frequencies_ghz")),
        "pixel_arcsec": _resolve(path, "pixel size", "--pixel-arcsec (pixel_arcsec)",
                                 pixel_arcsec, found.get("pixel_arcsec")),
        "units": _resolve(path, "units", "--units (units)", units, found.get("units")),
    }
    meta["frequencies_ghz"] = [float(f) for f in meta["frequencies_ghz"]]
    meta["pixel_arcsec"] = float(meta["pixel_arcsec"])
    return maps, meta


def _read_npy(path: Path) -> np.ndarray:
    """The array in the ``.npy`` file ``path``; one that is empty, truncated or not a ``.npy`` array is
    refused, naming the file."""
    try:
        maps = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable .npy array ({err}): it is empty, truncated or not "
                         "written by numpy.save; write it again") from None
    if not isinstance(maps, np.ndarray):
        maps.close()
        raise ValueError(f"{path} is a .npz archive, not a .npy array: save the maps with numpy.save")
    return maps


def _read_store(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    store = open_finished(path)
    meta = store.meta
    found = {"frequencies_ghz": meta["frequencies_ghz"], "pixel_arcsec": meta["geometry"]["pixel_arcsec"],
             "units": meta["units"]}
    return store.read("inputs"), found


def _read_fits(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from cenn.healpix.maps import fits_file, stated_frequency_ghz

    with fits_file(path) as hdus:
        header, data = hdus[0].header, hdus[0].data
        if data is None or data.ndim not in (3, 4):
            shape = None if data is None else data.shape
            raise ValueError(f"{path}: the primary HDU must hold an image (N, C, H, W) or (C, H, W) in "
                             f"numpy order; it holds {shape}")
        maps = np.array(data, dtype=data.dtype.newbyteorder("="))  # native byte order, for torch
    n_channels = maps.shape[-3]
    keys = [f"FREQ{i}" for i in range(1, n_channels + 1)]
    found = {
        "frequencies_ghz": ([stated_frequency_ghz(path, header, k) for k in keys]
                            if all(k in header for k in keys) else None),
        "pixel_arcsec": header.get("PIXSIZE"),
        "units": header.get("BUNIT"),
    }
    return maps, found


def write_output(path: str | Path, maps: np.ndarray, card: WeightsCard, source: str | Path) -> None:
    """Write the CMB ``maps (N, 1, H, W)`` (µK_CMB) predicted from ``source`` with the weights of
    ``card`` to ``path`` (``.npy``, ``.fits`` or ``.fits.gz``), atomically (:func:`atomic_output`).
    FITS files carry BUNIT, FREQ (GHz), PIXSIZE (arcsec) and HISTORY cards naming the weights. Maps
    holding NaN or infinite values are refused (:func:`check_finite_output`)."""
    path = Path(path)
    kind = _kind(path, "output")
    maps = np.asarray(maps, dtype=np.float32)
    check_finite_output(maps, path)
    with atomic_output(path) as tmp:
        if kind == "npy":
            np.save(tmp, maps)
        else:
            _fits_hdu(maps, card, source).writeto(tmp)


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, ending like it (writers read the format from the name),
    renamed to ``path`` when the block completes and removed when it raises: readers never see a
    half-written file."""
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp.{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output(path: str | Path, overwrite: bool) -> Path:
    """``path`` as a ``Path``, refused before any work when it exists (unless ``overwrite``) or is a
    folder, or when its folder is missing or not writable (:func:`cenn.outputs.check_writable`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: name the output file in it")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: choose another output or pass --overwrite")
    folder = path.parent
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"the folder {folder} of the output {path.name} {state}: create it (mkdir -p "
                         f"{folder}) or write elsewhere")
    check_writable(folder)
    return path


def check_finite_output(values: np.ndarray, path: Path) -> None:
    """Refuse to write ``values`` to ``path`` when any is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"refusing to write {path}: the CMB would hold {int(bad.sum())} NaN or infinite values "
            f"({100 * bad.mean():.3g} % of them) although the inputs were finite; check that the inputs "
            "are sky maps in µK_CMB, run in float32 (--precision 32), or use other weights or another method"
        )


def _ascii(text: Any) -> str:
    return str(text).encode("ascii", "replace").decode()


def _fits_hdu(maps: np.ndarray, card: WeightsCard, source: str | Path):
    from astropy.io import fits

    hdu = fits.PrimaryHDU(maps)
    header = hdu.header
    header["BUNIT"] = (UNITS, "CMB thermodynamic temperature, microkelvin")
    header["FREQ"] = (card.target_frequency_ghz, "[GHz] band whose beam the CMB map has")
    header["PIXSIZE"] = (card.pixel_arcsec, "[arcsec] pixel side")
    header["COMMENT"] = "CMB predicted by cenn; axes in numpy order (patch, 1, y, x)"
    header["HISTORY"] = _ascii(f"cenn {__version__} predict from {source}")
    header["HISTORY"] = _ascii(f"weights: {card.architecture} on {fmt_list(card.frequencies_ghz)} GHz, "
                               f"{card.normalization} normalization, created {card.created}, "
                               f"cenn {card.cenn_version}")
    return hdu


# --- command line ----------------------------------------------------------------------------------

def _parse_frequencies(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--frequencies takes GHz separated by commas, e.g. 143,217,353, got {text!r}"
        ) from err
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--frequencies must be positive GHz, got {text!r}")
    return values


def add_predict_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``cenn predict`` (patches: ``INPUT OUTPUT``; full sky: ``--maps ... --out``) to ``sub``."""
    p = sub.add_parser("predict", help="extract the CMB from patches, or from full-sky HEALPix maps "
                       "(--maps), with trained weights (default: the reference model) or a baseline")
    p.add_argument("input", nargs="?",
                   help="maps (N, C, H, W) in µK_CMB: a dataset store, .npy or .fits[.gz]")
    p.add_argument("output", nargs="?", help="CMB maps (N, 1, H, W) in µK_CMB: .npy, .fits or .fits.gz")
    p.add_argument("--weights", help="weights file (.safetensors) from cenn train (default: the reference "
                   "model shipped with cenn)")
    p.add_argument("--frequencies", type=_parse_frequencies, metavar="GHZ,GHZ,...",
                   help="frequency of each input channel (or --maps file), e.g. 143,217,353 (overrides "
                        "what the files say)")
    p.add_argument("--pixel-arcsec", type=float, help="pixel side in arcsec (overrides the file's)")
    p.add_argument("--units", help="units of the input maps: uK_CMB, mK_CMB or K_CMB (default: the file's, "
                   "else uK_CMB for .npy)")
    p.add_argument("--batch-size", type=int, default=32, help="patches per forward pass")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--precision", choices=PRECISIONS, default="32",
                   help="32 (float32) or bf16 (bfloat16 autocast); the output is float32 either way")
    p.add_argument("--fill-nonfinite", action="store_true",
                   help="fill NaN and infinite input pixels with their patch and channel median (the "
                        "fraction filled is reported) instead of refusing them")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    full = p.add_argument_group("full sky (HEALPix)")
    full.add_argument("--maps", nargs="+", metavar="FITS", help="one HEALPix map per band, in the "
                      "weights' frequency order (e.g. 143, 217, 353 GHz)")
    full.add_argument("--out", help="output HEALPix FITS: CMB and weight columns")
    full.add_argument("--method", default="cenn", help="cenn or a baseline (ilc, hilc, nilc, ...)")
    full.add_argument("--nside", type=int, help="output Nside, a power of two (default: the inputs')")
    full.add_argument("--overlap", type=float, default=0.25, help="overlap of neighbouring patches")
    full.add_argument("--apodisation", type=float, default=0.125,
                      help="width of the patches' cosine weight ramp, as a fraction of the side")
    full.add_argument("--interpolation", choices=["bilinear", "nearest"], default="bilinear",
                      help="how patches are cut from the maps (default bilinear, like the network's inputs)")
    full.add_argument("--reprojection", choices=["cubic", "bilinear"], default="cubic",
                      help="how patch outputs are put back on the sphere (default cubic spline)")
    full.add_argument("--instrument", default="planck_hfi", help="instrument preset for baselines")
    full.add_argument("--npix", type=int, default=256, help="patch side in pixels for baselines")
    full.add_argument("--mollweide", help="also write a Mollweide view of the CMB (.png, .pdf, .svg, ...)")
    full.add_argument("--no-progress", action="store_true")
    return p


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cenn predict``; problems with the inputs raise ``ValueError`` (or ``StoreError``,
    ``FileNotFoundError``) for the caller to report."""
    if args.maps:
        from cenn.healpix.command import run_full_sky

        if not args.out:
            raise ValueError("--maps needs --out FILE.fits for the full-sky CMB map")
        return run_full_sky(args)
    if args.input is None or args.output is None:
        raise ValueError("cenn predict needs INPUT and OUTPUT (patches), or --maps and --out (full sky)")
    _kind(Path(args.output), "output")  # fail before the work, not after
    check_output(args.output, args.overwrite)
    maps, meta = read_input(args.input, args.frequencies, args.pixel_arcsec, args.units)
    predictor = Predictor(resolve_weights(args.weights), device=args.device, precision=args.precision,
                          batch_size=args.batch_size)
    cmb = predictor.predict(maps, **meta, fill_nonfinite=args.fill_nonfinite)
    doubt = channel_order_warning(patch_spreads(maps), meta["frequencies_ghz"],  # shapes now checked
                                  "median per-patch standard deviation")
    if doubt:
        warnings.warn(doubt, stacklevel=1)
    write_output(args.output, cmb, predictor.card, source=args.input)
    n_patches = 1 if cmb.ndim == 3 else cmb.shape[0]
    print(f"{args.output}: CMB of {n_patches} patches of {cmb.shape[-2]}×{cmb.shape[-1]} pixels "
          f"(µK_CMB, {predictor.card.target_frequency_ghz:g} GHz beam) from {args.input}")
    return 0
