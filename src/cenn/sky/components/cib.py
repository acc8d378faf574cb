"""The cosmic infrared background (CIB): a Gaussian field, nearly fully correlated between bands.

Its spectrum in every band pair (a, b) is, in Jy² sr⁻¹,

    C_ab(ℓ) = C_ab^clustered(ℓ) + [C_ab^shot − C_ab^painted],

- the clustered part from the Planck 2013 XXX best-fit halo model, tabulated for every pair of
  143/217/353 GHz (auto and cross; log-log interpolation in ℓ);
- the shot (Poisson) part at the levels Planck measured (Tables 6 & 7 of Planck 2013 XXX:
  1.2 / 16 / 225 Jy² sr⁻¹, crosses 4.3 / 59 / 15), less the exact Poisson power of the infrared
  galaxies that the ``infrared_galaxies`` component paints as point sources: they are part of the
  same population, so the total shot power is counted once. The measured levels are not exactly
  a covariance matrix (r(143,353) = 0.913 is below what r(143,217) and r(217,353) allow); the
  drawn matrix is the nearest valid one with the same auto levels (crosses move by < 1 %).

In µK_CMB² sr, C_ab / (U_a U_b), U the band's MJy sr⁻¹ per K_CMB. Bands at other frequencies take
the spectra of the nearest tabulated channel scaled in Jy by the CIB modified blackbody
(T = 24 K, β = 1.2).

The field is drawn in Fourier space (``fourier_native``): for every mode, the n_bands × n_bands
matrix C(ℓ) is factored, C = L Lᵀ (Cholesky, after clipping each mode's correlation matrix to be
positive definite), and the bands' modes are L times independent white modes, so the measured
auto and cross spectra, hence the correlations between bands, are those of the model. The
clustered and shot parts can be switched separately (``clustered``, ``shot``); both are drawn
from one set of white modes (stream ``"cib"``), so switching one changes the other's realisation
but not its statistics.

Numbers and sources: ``cenn/sky/data/cib.toml`` and ``cib_clustered_planck2013.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from cenn.sky import units
from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.sources.infrared_galaxies import InfraredGalaxies
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument
from cenn.sky.rng import SampleRandom
from cenn.sky.shipped import shipped_path, shipped_toml

STREAM = "cib"
"""Name of the random stream the white modes are drawn from."""

_TOML = shipped_toml("cib.toml")
_SED = _TOML["sed"]
CORRELATION_FLOOR: float = float(_TOML["numerics"]["correlation_floor"])


# ------------------------------------------------------------------------------------ model


@lru_cache(maxsize=1)
def clustered_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped clustered spectra: ℓ (L,), channel frequencies (3,) in GHz and the symmetric
    C_ℓ matrix (3, 3, L) in Jy² sr⁻¹."""
    with shipped_path(_TOML["clustered"]["file"]) as path:
        data = np.loadtxt(path, delimiter=",", comments="#")
    ell = data[:, 0]
    pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]  # the CSV's column order
    cl = np.zeros((3, 3, len(ell)))
    for k, (a, b) in enumerate(pairs):
        cl[a, b] = cl[b, a] = data[:, k + 1]
    freqs = np.asarray(_TOML["clustered"]["frequencies_ghz"], dtype=np.float64)
    return ell, freqs, cl


def measured_shot_table() -> tuple[np.ndarray, np.ndarray]:
    """Channel frequencies (GHz) and the measured CIB shot levels (Jy² sr⁻¹, symmetric matrix)."""
    shot = _TOML["shot"]
    m = np.asarray(shot["cl_jy2_sr"], dtype=np.float64)
    if not np.allclose(m, m.T):
        raise ValueError("cib.toml: shot.cl_jy2_sr must be symmetric")
    return np.asarray(shot["frequencies_ghz"], dtype=np.float64), m


def band_mapping(frequencies_ghz: Sequence[float], channels_ghz: Sequence[float]) -> list[tuple[int, float]]:
    """For each band, the tabulated channel it takes its spectra from and the factor (in Jy) on
    them: the channel itself (factor 1) within the relative tolerance, else the nearest channel in
    log frequency scaled by the CIB modified blackbody."""
    chans = np.asarray(channels_ghz, dtype=np.float64)
    tol = float(_SED["relative_tolerance"])
    out = []
    for nu in frequencies_ghz:
        k = int(np.argmin(np.abs(np.log(nu / chans))))
        if abs(nu / chans[k] - 1.0) <= tol:
            out.append((k, 1.0))
        else:
            ratio = units.modified_blackbody(float(nu), _SED["beta"], _SED["temperature_k"], float(chans[k]))
            out.append((k, float(ratio)))
    return out


def _mapped(matrix: np.ndarray, mapping: list[tuple[int, float]]) -> np.ndarray:
    """Channel matrix (C, C, ...) → band matrix (n, n, ...) through :func:`band_mapping`."""
    idx = [k for k, _ in mapping]
    fac = np.array([f for _, f in mapping])
    out = matrix[np.ix_(idx, idx)] if matrix.ndim == 2 else matrix[idx][:, idx]
    shape = (len(idx), len(idx)) + (1,) * (matrix.ndim - 2)
    return out * np.outer(fac, fac).reshape(shape)


def clustered_cl_jy2(frequencies_ghz: Sequence[float], ell: np.ndarray) -> np.ndarray:
    """Clustered CIB C_ℓ in Jy² sr⁻¹ for every pair of frequencies, (n, n, *ell.shape): log-log
    interpolation of the table, held constant beyond its ℓ range (zero at ℓ = 0)."""
    tab_ell, chans, tab = clustered_table()
    ell = np.asarray(ell, dtype=np.float64)
    log_ell = np.log(np.clip(ell, tab_ell[0], tab_ell[-1]))
    interp = np.empty((3, 3, *ell.shape))
    for a in range(3):
        for b in range(3):
            interp[a, b] = np.exp(np.interp(log_ell, np.log(tab_ell), np.log(tab[a, b])))
    interp[..., ell <= 0] = 0.0
    return _mapped(interp, band_mapping(frequencies_ghz, chans))


def measured_shot_jy2(frequencies_ghz: Sequence[float]) -> np.ndarray:
    """The measured CIB shot levels (Planck 2013 XXX) in Jy² sr⁻¹ for every pair of frequencies,
    as tabulated (before the positive-definite projection), (n, n)."""
    chans, m = measured_shot_table()
    return _mapped(m, band_mapping(frequencies_ghz, chans))


def nearest_valid_covariance(matrix: np.ndarray, floor: float = 1e-6, iterations: int = 100) -> np.ndarray:
    """The nearest positive-definite matrix with the same diagonal: Higham's (2002) alternating
    projections with Dykstra's correction on the correlation matrix, eigenvalues ≥ ``floor``.

    A matrix that is already valid (smallest correlation eigenvalue ≥ floor) is returned as is.
    """
    d = np.sqrt(np.diag(matrix))
    if np.any(d <= 0):
        raise ValueError(f"diagonal must be positive, got {np.diag(matrix)}")
    corr = matrix / np.outer(d, d)
    if np.linalg.eigvalsh(corr)[0] >= floor:
        return matrix.copy()
    y, correction = corr.copy(), np.zeros_like(corr)
    for _ in range(iterations):
        r = y - correction
        w, v = np.linalg.eigh(r)
        x = (v * np.maximum(w, floor)) @ v.T
        correction = x - r
        y = x.copy()
        np.fill_diagonal(y, 1.0)
    return y * np.outer(d, d)


def to_uk2(matrix_jy2: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Jy² sr⁻¹ → µK_CMB² sr for a band-pair matrix (n, n, ...): divide by U_a U_b."""
    u = np.asarray(instrument.mjysr_per_kcmb(), dtype=np.float64)
    uu = np.outer(u, u).reshape((len(u), len(u)) + (1,) * (matrix_jy2.ndim - 2))
    return matrix_jy2 / uu


# ------------------------------------------------------------------------------- component


@register
@dataclass
class CIB(Component):
    """Clustered + shot CIB as one Gaussian field correlated between bands.

    Parameters:
        clustered: include the clustered (halo-model) part.
        shot: include the white shot-noise part (measured levels minus the painted galaxies).
        subtract_infrared_galaxies: remove the painted IR galaxies' Poisson power from the
            measured shot levels; set false when the ``infrared_galaxies`` component is off.
        infrared_galaxies: parameters of the painted ``infrared_galaxies`` population (keep equal
            to that component's); empty for its defaults.
    """

    name = "cib"
    fourier_native = True
    clustered: bool = True
    shot: bool = True
    subtract_infrared_galaxies: bool = True
    infrared_galaxies: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        allowed = {f.name for f in fields(InfraredGalaxies)}
        unknown = set(self.infrared_galaxies) - allowed
        if unknown:
            raise ValueError(
                f"cib.infrared_galaxies: unknown parameters {sorted(unknown)}; allowed {sorted(allowed)}"
            )
        InfraredGalaxies(**self.infrared_galaxies)  # validates the values

    # ---------------------------------------------------------------------------------- model

    def painted_population(self) -> InfraredGalaxies | None:
        """The painted galaxy population whose Poisson power is removed, or None."""
        return InfraredGalaxies(**self.infrared_galaxies) if self.subtract_infrared_galaxies else None

    def shot_cl_jy2(self, frequencies_ghz: Sequence[float]) -> np.ndarray:
        """The shot part drawn as a Gaussian white field, Jy² sr⁻¹, (n, n): the measured levels
        minus the painted galaxies' Poisson power, made positive definite with unchanged auto
        levels (:func:`nearest_valid_covariance`)."""
        residual = measured_shot_jy2(frequencies_ghz)
        galaxies = self.painted_population()
        if galaxies is not None:
            residual = residual - galaxies.poisson_cl_jy2(frequencies_ghz)
        low = [f for f, v in zip(frequencies_ghz, np.diag(residual), strict=True) if v <= 0]
        if low:
            raise ValueError(
                f"cib: the painted infrared galaxies' Poisson power exceeds the measured CIB shot "
                f"power at {low} GHz; raise infrared_galaxies.flux_min_jy"
            )
        return nearest_valid_covariance(residual)

    def shot_cl(self, instrument: Instrument) -> np.ndarray:
        """The drawn shot C_ℓ in µK_CMB² sr for every band pair, (n_bands, n_bands)."""
        return to_uk2(self.shot_cl_jy2(instrument.frequencies_ghz), instrument)

    def clustered_cl(self, instrument: Instrument, ell: np.ndarray) -> np.ndarray:
        """Clustered C_ℓ in µK_CMB² sr for every band pair, (n_bands, n_bands, *ell.shape)."""
        return to_uk2(clustered_cl_jy2(instrument.frequencies_ghz, ell), instrument)

    def model_cl(self, instrument: Instrument, ell: np.ndarray) -> np.ndarray:
        """The drawn field's C_ℓ (enabled parts, times scale²) in µK_CMB² sr,
        (n_bands, n_bands, *ell.shape); zero at ℓ = 0."""
        ell = np.asarray(ell, dtype=np.float64)
        n = instrument.n_bands
        cl = np.zeros((n, n, *ell.shape))
        if self.clustered:
            cl += self.clustered_cl(instrument, ell)
        if self.shot:
            cl += self.shot_cl(instrument).reshape((n, n) + (1,) * ell.ndim) * (ell > 0)
        return self.scale**2 * cl

    # --------------------------------------------------------------------------- simulation

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        cl = torch.from_numpy(self.model_cl(instrument, geometry.ell("cpu").numpy()))
        factor = mode_factor(cl)  # (n, n, y, x), C = L Lᵀ per mode
        # white modes have <|X|²> = N_pix; a field of spectrum C needs <|X|²> = N_pix C / Ω_pix
        norm = math.sqrt(geometry.npix**2 / 2.0 / geometry.pixel_area_sr)
        factor = (factor * norm).to(torch.float32)
        # repeated over (real, imaginary): the in-place products are then plain contiguous
        # elementwise operations (5× faster on CPU than broadcasting over a last axis of 2)
        self._factor = factor[..., None].expand(*factor.shape, 2).contiguous().to(device)
        self._nonzero = bool(torch.any(factor != 0))

    def sky_fourier(self, ctx: SkyContext) -> torch.Tensor:
        """rfft2 of the CIB maps, ``(batch, n_bands, n, n // 2 + 1)`` complex64, µK_CMB.

        The white modes of each sample are drawn into the output buffer and turned into the
        bands' modes in place, L times them; on CPU one sample per task on a few threads, so the
        sample's data stay in cache between the steps.
        """
        n = ctx.geometry.npix
        nb = self._factor.shape[0]
        out = torch.empty((ctx.batch, nb, n, n // 2 + 1, 2), device=ctx.device)
        if not self._nonzero:
            return torch.view_as_complex(out.zero_())
        correlated_modes_(out, ctx.random.generators(STREAM), self._factor,
                           per_sample=out.device.type == "cpu")
        return torch.view_as_complex(out)


def correlated_modes_(
    out: torch.Tensor, generators: list[torch.Generator], lower: torch.Tensor, per_sample: bool
) -> None:
    """Fill ``out (batch, n_bands, n, nx, 2)`` with the modes L w, w white (one generator per
    sample). ``per_sample`` (CPU) does all steps sample by sample on a few threads, while the
    sample's data are in cache; otherwise (GPU) draws per sample and transforms the batch at once.
    Both give the same numbers."""
    if per_sample:

        def one(i: int) -> None:
            w = out[i]
            torch.randn(w.shape, generator=generators[i], out=w)
            _hermitian_columns_(w)
            _apply_lower_(w, lower)

        _for_each_sample(one, len(generators))
    else:
        for i, g in enumerate(generators):
            torch.randn(out.shape[1:], generator=g, out=out[i])
        _hermitian_columns_(out)
        _apply_lower_(out, lower)


def _for_each_sample(task, count: int) -> None:
    """Run ``task(i)`` for i < count, on up to ``torch.get_num_threads()`` threads (torch
    releases the GIL; each sample has its own generator, so the draws do not depend on the
    schedule)."""
    threads = min(torch.get_num_threads(), count)
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(task, range(count)))
    else:
        for i in range(count):
            task(i)


def _hermitian_columns_(w: torch.Tensor) -> None:
    """Make the self-conjugate columns (k_x = 0 and Nyquist) of rfft2-layout modes
    ``w (..., n, n // 2 + 1, 2)`` Hermitian in place, as :func:`cenn.sky.fields.white_fourier`
    does: X ← (X + conj X(−k_y)) / √2."""
    n = w.shape[-3]
    z = torch.view_as_complex(w)
    flip = (-torch.arange(n, device=w.device)) % n
    for c in [0] + ([n // 2] if n % 2 == 0 else []):
        col = z[..., c]
        z[..., c] = (col + col[..., flip].conj()) / math.sqrt(2.0)


def _apply_lower_(w: torch.Tensor, lower: torch.Tensor) -> None:
    """w_i ← Σ_{j≤i} L_ij w_j in place over the band axis of ``w (..., n_bands, n, nx, 2)``,
    ``lower (n_bands, n_bands, n, nx, 2)`` (or broadcastable to it); last band first, so each
    w_j is still white when used."""
    nb = lower.shape[0]
    for i in range(nb - 1, -1, -1):
        wi = w[..., i, :, :, :]
        wi.mul_(lower[i, i])
        for j in range(i):
            wi.addcmul_(lower[i, j], w[..., j, :, :, :])


def mode_factor(cl: torch.Tensor, floor: float = CORRELATION_FLOOR) -> torch.Tensor:
    """Lower-triangular L with L Lᵀ = C for every mode of ``cl`` (n, n, ...), float64.

    Each mode's correlation matrix has its eigenvalues clipped at ``floor`` and its diagonal reset
    to 1 (the tabulated spectra are rounded to 5 digits and are not exactly positive definite
    where the bands are 99.9 % correlated: this moves correlations by ~1e-5 and leaves the auto
    spectra exact), then is factored by Cholesky and rescaled by the bands' amplitudes. Modes or
    bands with zero power get zero rows.
    """
    n = cl.shape[0]
    batch_shape = cl.shape[2:]
    c = cl.to(torch.float64).reshape(n, n, -1).permute(2, 0, 1)  # (modes, n, n)
    diag = torch.diagonal(c, dim1=1, dim2=2).clamp(min=0.0)
    amp = diag.sqrt()
    safe = torch.where(amp > 0, amp, torch.ones_like(amp))
    corr = c / (safe[:, :, None] * safe[:, None, :])
    eye = torch.eye(n, dtype=torch.float64)
    dead = amp <= 0
    corr = torch.where(dead[:, :, None] | dead[:, None, :], eye, corr)
    w, v = torch.linalg.eigh(corr)
    corr = (v * w.clamp(min=floor)[:, None, :]) @ v.transpose(1, 2)
    unit = torch.diagonal(corr, dim1=1, dim2=2).sqrt()
    corr = corr / (unit[:, :, None] * unit[:, None, :])  # auto spectra stay exact
    lower = torch.linalg.cholesky(corr) * amp[:, :, None]
    return lower.permute(1, 2, 0).reshape(n, n, *batch_shape)


def white_modes(random: SampleRandom, stream: str, geometry: PatchGeometry, channels: int) -> torch.Tensor:
    """Fourier modes of unit white noise in rfft2 layout as real pairs,
    ``(batch, channels, n, n // 2 + 1, 2)`` float32, real and imaginary parts of unit variance.

    These are the draws :meth:`CIB.sky_fourier` starts from: ``view_as_complex`` of the result,
    times √(N_pix/2), equals :func:`cenn.sky.fields.white_fourier` for the same stream (the same
    numbers as ``random.normal(stream, (channels, n, n // 2 + 1, 2))``, made Hermitian along the
    self-conjugate columns in the same way), written straight into one buffer.
    """
    n = geometry.npix
    out = torch.empty((len(random), channels, n, n // 2 + 1, 2), device=random.device)
    gens = random.generators(stream)

    def one(i: int) -> None:
        torch.randn(out.shape[1:], generator=gens[i], out=out[i])
        _hermitian_columns_(out[i])

    _for_each_sample(one, len(gens))
    return out
