"""Lensed CMB temperature power spectra: the shipped Planck 2018 spectrum, or CAMB for others.

The default spectrum ships as ``data/cmb/planck2018_lensed_tt.csv`` (made by
``scripts/make_cmb_spectrum.py`` with :func:`compute_lensed_tt`), so runs need no CAMB. Other
cosmologies are computed with CAMB (optional dependency) and cached under ``$CENN_CACHE`` (default
``~/.cache/cenn``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cenn.io.atomic import staged
from cenn.sky.shipped import shipped_path

PLANCK2018_BESTFIT = {
    "ombh2": 0.0223828,
    "omch2": 0.1201075,
    "H0": 67.32117,
    "tau": 0.05430842,
    "As": 2.100549e-9,
    "ns": 0.9660499,
    "mnu": 0.06,
    "YHe": 0.2454006,
}
"""CAMB ``inifiles/planck_2018.ini`` best fit (base_plikHM_TTTEEE_lowl_lowE_lensing)."""

DEFAULT_LMAX = 8000
SHIPPED_FILE = "planck2018_lensed_tt.csv"


def compute_lensed_tt(params: dict[str, float], lmax: int = DEFAULT_LMAX) -> np.ndarray:
    """Lensed TT C_ℓ in µK² for ℓ = 0..lmax with CAMB (HMcode non-linear lensing).

    Args:
        params: CAMB cosmological parameters (keys as in :data:`PLANCK2018_BESTFIT`).
        lmax: largest multipole returned.
    """
    try:
        import camb
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "computing a CMB spectrum for a non-default cosmology needs CAMB: "
            "pip install 'cenn[camb]'"
        ) from err
    cosmo = {k: v for k, v in params.items() if k not in {"As", "ns"}}
    pars = camb.set_params(
        **cosmo, As=params["As"], ns=params["ns"], halofit_version="mead",
        lmax=lmax + 500, lens_potential_accuracy=2, num_massive_neutrinos=1,
        NonLinear=camb.model.NonLinear_both,
    )
    results = camb.get_results(pars)
    cl = results.get_lensed_scalar_cls(lmax=lmax, CMB_unit="muK", raw_cl=True)[:, 0]
    return np.asarray(cl, dtype=np.float64)


def write_spectrum(path: Path, cl: np.ndarray, params: dict[str, float]) -> None:
    """Write ``ℓ, C_ℓ`` as CSV with the parameters in a comment header."""
    ell = np.arange(cl.size)
    header = (
        "Lensed CMB TT power spectrum C_ell in uK_CMB^2 (not D_ell), computed with CAMB.\n"
        f"parameters: {json.dumps(params, sort_keys=True)}\n"
        "ell,cl_tt_uk2"
    )
    np.savetxt(path, np.column_stack([ell, cl]), delimiter=",", fmt=["%d", "%.8e"], header=header)


def read_spectrum(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read a spectrum CSV written by :func:`write_spectrum`: returns (ℓ, C_ℓ in µK²)."""
    data = np.loadtxt(path, delimiter=",", comments="#")
    return data[:, 0], data[:, 1]


def _cache_dir() -> Path:
    return Path(os.environ.get("CENN_CACHE", Path.home() / ".cache" / "cenn"))


def lensed_tt(params: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ, C_ℓ µK²): the shipped Planck 2018 spectrum, or CAMB for ``params`` (cached)."""
    if params is None or params == PLANCK2018_BESTFIT:
        with shipped_path(f"cmb/{SHIPPED_FILE}") as p:
            return read_spectrum(p)
    full = {**PLANCK2018_BESTFIT, **params}
    key = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
    path = _cache_dir() / f"lensed_tt_{key}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with staged(path) as tmp:
            write_spectrum(tmp, compute_lensed_tt(full), full)
    return read_spectrum(path)
