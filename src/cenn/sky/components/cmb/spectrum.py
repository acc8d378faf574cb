"""CMB power spectra: the shipped Planck 2018 lensed TT, EE, BB, TE and tensor BB, or CAMB for others.

The default spectra ship as ``data/cmb/planck2018_cls.csv`` (made by ``scripts/make_cmb_spectrum.py``
with :func:`compute_spectra`), so runs need no CAMB: the lensed scalar TT, EE, BB (lensing B modes)
and TE, and the unlensed tensor BB for a tensor-to-scalar ratio r = 1 (at k₀ = 0.05 Mpc⁻¹), which
:func:`cmb_spectra` scales by r. Other cosmologies are computed with CAMB (optional dependency) and
cached under ``$CENN_CACHE`` (default ``~/.cache/cenn``).
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
#: Largest multipole of the tensor spectrum (primordial B modes are negligible above ℓ ≈ 1000).
TENSOR_LMAX = 3000
SHIPPED_FILE = "planck2018_cls.csv"
#: Columns of a spectra file after ℓ: lensed scalar TT, EE, BB, TE, and the tensor BB for r = 1.
COLUMNS = ("tt", "ee", "bb", "te", "bb_tensor_r1")


def _camb():
    try:
        import camb
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "computing a CMB spectrum for a non-default cosmology needs CAMB: pip install 'cenn[camb]'"
        ) from err
    return camb


def _camb_params(params: dict[str, float], lmax: int, **extra):
    camb = _camb()
    cosmo = {k: v for k, v in params.items() if k not in {"As", "ns"}}
    return camb.set_params(
        **cosmo, As=params["As"], ns=params["ns"], halofit_version="mead",
        lmax=lmax + 500, lens_potential_accuracy=2, num_massive_neutrinos=1,
        NonLinear=camb.model.NonLinear_both, **extra,
    )


def compute_spectra(params: dict[str, float], lmax: int = DEFAULT_LMAX) -> dict[str, np.ndarray]:
    """C_ℓ in µK² for ℓ = 0..lmax with CAMB (HMcode non-linear lensing), keyed by :data:`COLUMNS`:
    the lensed scalar TT, EE, BB, TE, and the unlensed tensor BB for r = 1 (zero above
    :data:`TENSOR_LMAX`). The scalar spectra come from a run without tensors.

    Args:
        params: CAMB cosmological parameters (keys as in :data:`PLANCK2018_BESTFIT`).
        lmax: largest multipole returned.
    """
    camb = _camb()
    scalar = camb.get_results(_camb_params(params, lmax))
    cl = scalar.get_lensed_scalar_cls(lmax=lmax, CMB_unit="muK", raw_cl=True)
    out = {name: np.asarray(cl[:, i], dtype=np.float64) for i, name in enumerate(COLUMNS[:4])}
    tensor_lmax = min(lmax, TENSOR_LMAX)
    pars = _camb_params(params, lmax, r=1.0, WantTensors=True, max_l_tensor=tensor_lmax + 500,
                        max_eta_k_tensor=2.0 * (tensor_lmax + 500))
    tensor = camb.get_results(pars).get_tensor_cls(lmax=tensor_lmax, CMB_unit="muK", raw_cl=True)
    out["bb_tensor_r1"] = np.zeros(lmax + 1)
    out["bb_tensor_r1"][: tensor_lmax + 1] = tensor[:, 2]
    return out


def write_spectra(path: Path, cls: dict[str, np.ndarray], params: dict[str, float]) -> None:
    """Write ``ℓ`` and the :data:`COLUMNS` of ``cls`` as CSV, with the parameters in a comment."""
    ell = np.arange(cls["tt"].size)
    header = (
        "CMB power spectra C_ell in uK_CMB^2 (not D_ell), computed with CAMB: lensed scalar TT, EE, "
        "BB (lensing B modes), TE, and the unlensed tensor BB for r = 1.\n"
        f"parameters: {json.dumps(params, sort_keys=True)}\n"
        "ell," + ",".join(f"cl_{c}_uk2" for c in COLUMNS)
    )
    table = np.column_stack([ell] + [cls[c] for c in COLUMNS])
    np.savetxt(path, table, delimiter=",", fmt=["%d"] + ["%.8e"] * len(COLUMNS), header=header)


def read_spectra(path: Path | str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Read a spectra CSV written by :func:`write_spectra`: (ℓ, {column: C_ℓ in µK²})."""
    data = np.loadtxt(path, delimiter=",", comments="#")
    return data[:, 0], {c: data[:, i + 1].copy() for i, c in enumerate(COLUMNS)}


def _cache_dir() -> Path:
    return Path(os.environ.get("CENN_CACHE", Path.home() / ".cache" / "cenn"))


def cmb_spectra(params: dict[str, float] | None = None, r: float = 0.0
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(ℓ, {"tt", "ee", "bb", "te": C_ℓ in µK²}): the shipped Planck 2018 spectra, or CAMB for
    ``params`` (cached); ``bb`` is the lensing BB plus ``r`` times the tensor BB for r = 1."""
    if not r >= 0:
        raise ValueError(f"the tensor-to-scalar ratio r must be >= 0, got {r}")
    if params is None or params == PLANCK2018_BESTFIT:
        with shipped_path(f"cmb/{SHIPPED_FILE}") as p:
            ell, cls = read_spectra(p)
    else:
        full = {**PLANCK2018_BESTFIT, **params}
        key = hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]
        path = _cache_dir() / f"cmb_cls_{key}.csv"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with staged(path) as tmp:
                write_spectra(tmp, compute_spectra(full), full)
        ell, cls = read_spectra(path)
    tensor = cls.pop("bb_tensor_r1")
    if r:
        cls["bb"] = cls["bb"] + r * tensor
    return ell, cls


def lensed_tt(params: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ, C_ℓ µK²): the lensed TT of :func:`cmb_spectra`."""
    ell, cls = cmb_spectra(params)
    return ell, cls["tt"]
