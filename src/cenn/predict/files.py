"""Map files in and out: patches read from a dataset store, ``.npy`` or FITS (:func:`read_input`)
and the CMB written as ``.npy`` or FITS (:func:`write_output`); output paths are checked before any
work by :func:`cenn.outputs.check_file_outputs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cenn._version import __version__
from cenn.data.stokes import maps_per_band, qu_channels, qu_noise_sigma
from cenn.data.store import StoreError, open_finished
from cenn.io.fits import fits_file, stated_frequency_ghz
from cenn.io.units import UNITS, uk_per_unit
from cenn.model.weights import WeightsCard, fmt_list
from cenn.outputs import write_file
from cenn.predict.values import check_finite_output, check_real

_NPY = (".npy",)
_FITS = (".fits", ".fits.gz")
SUPPORTED_FILES = (*_NPY, *_FITS)


def file_kind(path: Path, role: str) -> str:
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
    stokes: str = "I",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Maps ``(N, C, H, W)`` or ``(C, H, W)`` and their ``{frequencies_ghz, pixel_arcsec, units}``.

    ``path`` is a dataset store written by ``cenn simulate`` (its ``inputs``, or with ``stokes =
    "QU"`` its ``polarization`` as ``(N, 2C, H, W)``, the bands' Q then U: :mod:`cenn.data.stokes`;
    metadata from the store), a ``.npy`` array (frequencies and pixel size must be given; units
    default to µK_CMB) or a FITS file (``.fits``/``.fits.gz``: the primary HDU's image in numpy
    order, header keys ``FREQ1``…``FREQn`` in GHz, ``PIXSIZE`` in arcsec, ``BUNIT``). Values given
    here override the file's.
    """
    path = Path(path)
    if path.is_dir():
        maps, found = _read_store(path, stokes)
    elif not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    elif file_kind(path, "input") == "npy":
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


#: Plausible per-pixel noise σ in µK_CMB (median over a σ file): outside, its units are wrong.
SIGMA_RANGE_UK = (0.1, 1e5)


def read_noise_input(path: str | Path, noise_file: str | Path | None, shape: tuple[int, ...],
                     units: str, stokes: str = "I") -> np.ndarray | None:
    """The per-pixel noise σ of the maps read from ``path``, in the maps' ``units``, shape ``shape``:
    from ``noise_file`` (``.npy`` or FITS image, in the maps' units unless its BUNIT says otherwise),
    else a dataset store's ``noise_sigma`` (for ``stokes = "QU"``, √2 × it for Q, then for U), else
    None. Refused before any work: a shape other than the
    maps', values that are not positive and finite, or a median outside :data:`SIGMA_RANGE_UK` (the
    units are wrong)."""
    if noise_file is None:
        if not Path(path).is_dir():
            return None
        sigma = open_finished(path).noise_sigma()
        return sigma if maps_per_band(stokes) == 1 else qu_noise_sigma(sigma)
    noise_file = Path(noise_file)
    if not noise_file.exists():
        raise FileNotFoundError(f"no noise σ file at {noise_file}")
    if file_kind(noise_file, "--noise-sigma") == "npy":
        sigma, stated = _read_npy(noise_file), None
    else:
        sigma, found = _read_fits(noise_file)
        stated = found.get("units")
    check_real(sigma.dtype, str(noise_file))
    if sigma.shape != tuple(shape):
        raise ValueError(f"--noise-sigma {noise_file} has shape {sigma.shape} but the maps {tuple(shape)}: "
                         "give one σ map per input map, in the same order")
    sigma = sigma.astype(np.float64) * uk_per_unit(stated or units)
    if not (np.isfinite(sigma).all() and (sigma > 0).all()):
        raise ValueError(f"--noise-sigma {noise_file} holds zero, negative, NaN or infinite values: σ must "
                         "be a positive standard deviation in every pixel")
    median = float(np.median(sigma))
    if not SIGMA_RANGE_UK[0] <= median <= SIGMA_RANGE_UK[1]:
        raise ValueError(f"--noise-sigma {noise_file}: its median σ is {median:.3g} µK_CMB, outside "
                         f"{SIGMA_RANGE_UK[0]:g}–{SIGMA_RANGE_UK[1]:g} µK: its units are wrong (they are "
                         f"taken as {stated or units}); state them with BUNIT in the file or convert it")
    return (sigma / uk_per_unit(units)).astype(np.float32)


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


def _read_store(path: Path, stokes: str) -> tuple[np.ndarray, dict[str, Any]]:
    store = open_finished(path)
    meta = store.meta
    found = {"frequencies_ghz": meta["frequencies_ghz"], "pixel_arcsec": meta["geometry"]["pixel_arcsec"],
             "units": meta["units"]}
    if maps_per_band(stokes) == 1:
        return store.read("inputs"), found
    if store.stokes != "IQU":
        raise StoreError(f"{path} holds temperature only, but these weights separate Q and U: simulate it "
                         "with cenn simulate --stokes IQU, or use temperature weights")
    return qu_channels(store.read("polarization")), found


def _read_fits(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
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


def write_output(path: str | Path, maps: np.ndarray, card: WeightsCard, source: str | Path,
                 precision: str | None = None) -> None:
    """Write the CMB ``maps (N, 1, H, W)`` (µK_CMB; its Q and U ``(N, 2, H, W)`` for weights of
    ``stokes = "QU"``) predicted from ``source`` with the weights of ``card`` (run in ``precision``,
    "32" or "bf16", when given) to ``path`` (``.npy``, ``.fits`` or ``.fits.gz``), atomically
    (:func:`cenn.outputs.write_file`: an OS error is one line naming ``path``).
    FITS files carry BUNIT, FREQ (GHz), PIXSIZE (arcsec) and HISTORY cards naming the weights and the
    precision. Maps holding NaN or infinite values are refused (:func:`check_finite_output`)."""
    path = Path(path)
    kind = file_kind(path, "output")
    maps = np.asarray(maps, dtype=np.float32)
    check_finite_output(maps, path)
    with write_file(path, keep_suffix=True) as tmp:
        if kind == "npy":
            np.save(tmp, maps)
        else:
            _fits_hdu(maps, card, source, precision).writeto(tmp)


def _ascii(text: Any) -> str:
    return str(text).encode("ascii", "replace").decode()


def _fits_hdu(maps: np.ndarray, card: WeightsCard, source: str | Path, precision: str | None):
    from astropy.io import fits

    hdu = fits.PrimaryHDU(maps)
    header = hdu.header
    header["BUNIT"] = (UNITS, "CMB thermodynamic temperature, microkelvin")
    header["FREQ"] = (card.target_frequency_ghz, "[GHz] band whose beam the CMB map has")
    header["PIXSIZE"] = (card.pixel_arcsec, "[arcsec] pixel side")
    header["STOKES"] = (card.stokes, "I: temperature; QU: axis 1 holds Q, then U")
    header["COMMENT"] = f"CMB predicted by cenn; axes in numpy order (patch, {', '.join(card.stokes)}, y, x)"
    header["HISTORY"] = _ascii(f"cenn {__version__} predict from {source}")
    header["HISTORY"] = _ascii(f"weights: {card.architecture} on {fmt_list(card.frequencies_ghz)} GHz, "
                               f"{card.normalization} normalization, created {card.created}, "
                               f"cenn {card.cenn_version}")
    if precision is not None:
        header["HISTORY"] = f"network precision: {precision} (32: float32; bf16: bfloat16 autocast)"
    return hdu
