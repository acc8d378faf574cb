"""Thermal Sunyaev-Zel'dovich effect from a Poisson population of galaxy clusters.

Per patch, halos are drawn with Poisson counts from a shipped table of the expected number per
steradian in bins of (z, log10 M500) (Tinker+2008 mass function, Δ = 500 ρ_c, Planck 2018
cosmology; made by ``scripts/make_tsz_counts.py``), uniformly in z and log10 M within a bin, at
uniform positions on the generation grid. Each halo's Compton parameter integrated within the
truncation radius follows the Planck 2015 XXIV scaling relation,

    E(z)^-β D_A² Y500 = 10^-4 Mpc² · Y* (h/0.7)^(α−2) [(1−b) M500 / 6×10¹⁴ M☉]^α,
    Y = J · Y500 · 10^(σ_logY N(0,1)),   J = Y_sph(5 R500) / Y_sph(R500) ≈ 1.80,

and its shape is the Arnaud+2010 universal pressure profile truncated at 5 R500 and projected
along the line of sight, scaled by θ500 = R500 / D_A. The map in a band is ΔT = y × the band's
K_CMB per unit y (``Band.tsz_kcmb_per_y``: decrement at 143 GHz, ≈ null at 217, increment at
353). Parameters and their sources: ``data/tsz.toml``. The pieces live beside this module: the
halo table (:mod:`~cenn.sky.components.tsz.halo_counts`), its background cosmology
(:mod:`~cenn.sky.components.tsz.cosmology`, astropy), the profile
(:mod:`~cenn.sky.components.tsz.pressure_profile`) and the bin sampler
(:mod:`~cenn.sky.components.tsz.alias_sampler`).

Painting (batched over every cluster of the batch, the same code on CPU and GPU):

* clusters with θ500 ≥ ``stamp_min_theta500_pix`` (a few per patch, resolved by the beams) get
  their own profile on a square stamp around their exact position, looked up in a 1-D table in
  units of θ500 at each pixel centre, normalised to the cluster's Y, added with ``index_add_``;
* smaller clusters (≈ 98 %) are deposited in their pixel and convolved by FFT with the kernel of
  their θ500 group. The kernel K is real and positive in real space with K(ℓ=0) = 1 (Y is
  conserved exactly, sub-pixel cores included), and K² is the Y²-weighted mean, over the
  group's halos, of the power of pixel-averaged profiles at random sub-pixel positions,
  aliases included, so the mean spectrum of the map is exact while each small cluster takes
  its group's mean shape.

The map is periodic on the generation grid (stamps wrap around), like the Gaussian components;
the simulator crops a margin.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from cenn.sky.components.base import Component, SkyContext, register
from cenn.sky.components.tsz import alias_sampler
from cenn.sky.components.tsz.halo_counts import HaloCounts
from cenn.sky.components.tsz.pressure_profile import (
    TABLE_DENSITY,
    PressureProfile,
    profile_transform,
    stamp_table,
)
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument
from cenn.sky.shipped import shipped_toml

PARAMS_FILE = "tsz.toml"
STAMP_HALF_WIDTHS = (*range(1, 33), 36, 40, 44, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 256,
                     320, 384, 512)
"""Stamp half-widths (pixels) clusters are grouped into; capped at (n − 1) // 2 on a grid."""
_ALIASES = 3  # aliases per axis summed in the kernels of the Fourier groups
_STAMP_ROW_DLN = 0.1  # spacing in ln θ500 of the rows of the stamp profile table
_STAMP_ROW_MAX = 64.0  # θ500 (pixels) of its last row, used for all larger clusters
_CHUNK = 1 << 20  # pixels processed at once on the CPU (small buffers are reused by malloc)


_D = shipped_toml(PARAMS_FILE)["defaults"]


# ---------------------------------------------------------------------------------------------
# FFTs: pocketfft (scipy, threaded) on the CPU, where it is several times faster than torch's
# batched inverse transform; torch.fft elsewhere.


def _rfft2(x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu":
        from scipy import fft

        return torch.from_numpy(fft.rfft2(x.numpy(), workers=torch.get_num_threads()))
    return torch.fft.rfft2(x)


def _irfft2(f: torch.Tensor, n: int) -> torch.Tensor:
    if f.device.type == "cpu":
        from scipy import fft

        return torch.from_numpy(fft.irfft2(f.numpy(), s=(n, n), workers=torch.get_num_threads()))
    return torch.fft.irfft2(f, s=(n, n))


# ---------------------------------------------------------------------------------------------
# The component


@register
@dataclass
class TSZ(Component):
    """Thermal SZ from clusters drawn per patch from a halo mass function.

    Parameters (defaults and sources in ``data/tsz.toml``):
        counts_file: halo counts table (the shipped one by default, or a path).
        log10_m_min, log10_m_max: M500 range, log10 M☉.
        z_min, z_max: redshift range.
        mass_bias: hydrostatic mass bias b, entering the Y–M relation as (1 − b) M500.
        log10_y_star, y_mass_slope, y_redshift_slope: Planck 2015 XXIV Y–M relation.
        y_scatter_dex: log-normal scatter of Y at fixed mass, dex.
        upp_c500, upp_gamma, upp_alpha, upp_beta: Arnaud+2010 pressure-profile shape.
        truncation_r500: profile truncation radius in R500.
        stamp_min_theta500_pix: clusters with θ500 at least this many pixels are painted on
            stamps with their own profile; smaller ones are deposited in their pixel and
            convolved (FFT) with the kernel of their θ500 group.
        kernel_groups: number of log-spaced θ500 groups below ``stamp_min_theta500_pix``, each
            with its own kernel (one FFT each).
    """

    name = "tsz"
    counts_file: str = _D["counts_file"]
    log10_m_min: float = _D["log10_m_min"]
    log10_m_max: float = _D["log10_m_max"]
    z_min: float = _D["z_min"]
    z_max: float = _D["z_max"]
    mass_bias: float = _D["mass_bias"]
    log10_y_star: float = _D["log10_y_star"]
    y_mass_slope: float = _D["y_mass_slope"]
    y_redshift_slope: float = _D["y_redshift_slope"]
    y_scatter_dex: float = _D["y_scatter_dex"]
    upp_c500: float = _D["upp_c500"]
    upp_gamma: float = _D["upp_gamma"]
    upp_alpha: float = _D["upp_alpha"]
    upp_beta: float = _D["upp_beta"]
    truncation_r500: float = _D["truncation_r500"]
    stamp_min_theta500_pix: float = _D["stamp_min_theta500_pix"]
    kernel_groups: int = _D["kernel_groups"]
    _state: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.mass_bias < 1.0:
            raise ValueError(f"mass_bias must be in [0, 1), got {self.mass_bias}")
        if self.y_scatter_dex < 0:
            raise ValueError(f"y_scatter_dex must be >= 0, got {self.y_scatter_dex}")
        if not self.truncation_r500 > 1.0:
            raise ValueError(f"truncation_r500 must exceed 1, got {self.truncation_r500}")
        if not self.stamp_min_theta500_pix > 0:
            raise ValueError(
                f"stamp_min_theta500_pix must be positive, got {self.stamp_min_theta500_pix}"
            )
        if not (isinstance(self.kernel_groups, int) and self.kernel_groups >= 1):
            raise ValueError(f"kernel_groups must be an integer >= 1, got {self.kernel_groups}")
        self.counts = HaloCounts.read(self.counts_file)
        rates, z_lo, z_hi, m_lo, m_hi = self.counts.restricted(
            self.log10_m_min, self.log10_m_max, self.z_min, self.z_max
        )
        self.background = self.counts.background
        self.profile = PressureProfile(
            self.upp_c500, self.upp_gamma, self.upp_alpha, self.upp_beta, self.truncation_r500
        )
        self.j_ratio = self.profile.j_ratio
        # Flattened bins (z-major) with what a draw needs: edges, and D_A at the z edges.
        nz, nm = rates.shape
        flat = rates.ravel()
        self._rate_per_sr = float(flat.sum())
        if not self._rate_per_sr > 0:
            raise ValueError("the mass and redshift ranges hold no halos")
        da_lo = self.background.angular_diameter_distance(z_lo)
        da_hi = self.background.angular_diameter_distance(z_hi)
        live = flat > 0  # bins that can be drawn
        self._bins = {
            "z_lo": np.repeat(z_lo, nm)[live], "dz": np.repeat(z_hi - z_lo, nm)[live],
            "da_lo": np.repeat(da_lo, nm)[live], "dda": np.repeat(da_hi - da_lo, nm)[live],
            "m_lo": np.tile(m_lo, nz)[live], "dm": np.tile(m_hi - m_lo, nz)[live],
        }
        self._prob = flat[live] / flat.sum()
        zc = 0.5 * (z_lo + z_hi)[:, None]
        mc = 10.0 ** (0.5 * (m_lo + m_hi))[None, :]
        self._bin_theta = self.theta500_rad(mc, zc).ravel()[live]
        self._bin_weight = flat[live] * self.y_total_sr(mc, zc).ravel()[live] ** 2

    def parameters(self) -> dict:
        """The resolved parameters (not the cached tables), for provenance."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    # -- physics ---------------------------------------------------------------------------

    @property
    def _y_norm(self) -> float:
        """J × 10⁻⁴ Mpc² Y* (h/0.7)^(α−2) [(1 − b)/6×10¹⁴ M☉]^α."""
        a = self.y_mass_slope
        return (self.j_ratio * 1e-4 * 10.0**self.log10_y_star
                * (self.background.h / 0.7) ** (a - 2.0) * ((1.0 - self.mass_bias) / 6e14) ** a)

    def y500_mpc2(self, m500, z):
        """Mean-relation D_A² Y500 in Mpc² (no scatter) for M500 in M☉ at redshift z."""
        return (self._y_norm / self.j_ratio * self.background.e_of_z(z) ** self.y_redshift_slope
                * np.asarray(m500, dtype=np.float64) ** self.y_mass_slope)

    def y_total_sr(self, m500, z):
        """Mean-relation Y within the truncation radius, sr (J Y500 / D_A²)."""
        da = self.background.angular_diameter_distance(z)
        return self.j_ratio * self.y500_mpc2(m500, z) / da**2

    def theta500_rad(self, m500, z):
        """θ500 = R500 / D_A in radians."""
        return self.background.r500(m500, z) / self.background.angular_diameter_distance(z)

    def mean_count(self, area_sr: float, log10_m_min: float | None = None) -> float:
        """Expected number of halos in ``area_sr`` (above ``log10_m_min`` if given)."""
        lo = self.log10_m_min if log10_m_min is None else max(log10_m_min, self.log10_m_min)
        return area_sr * self.counts.number_per_sr(lo, self.log10_m_max, self.z_min, self.z_max)

    def cl_yy(self, ell) -> np.ndarray:
        """Expected Poisson (one-halo) C_ℓ of Compton y, sr, for the configured population, as a
        continuous sky (no pixel window): Σ_bins dN/dΩ ⟨Y²⟩ P²(ℓ θ500), ⟨Y²⟩ including the
        log-normal scatter."""
        q, p = profile_transform(self.profile)
        ell = np.atleast_1d(np.asarray(ell, dtype=np.float64))
        scatter = math.exp(2.0 * (self.y_scatter_dex * math.log(10.0)) ** 2)
        pq = np.interp(ell[:, None] * self._bin_theta[None, :], q, p, right=0.0)
        return scatter * (pq**2 @ self._bin_weight)

    # -- catalogue -------------------------------------------------------------------------

    def draw_catalogue(self, ctx: SkyContext) -> dict[str, np.ndarray]:
        """Halos of every patch of the batch, as NumPy arrays of equal length: ``sample`` (index
        in the batch), ``x``, ``y`` (continuous pixel coordinates on the grid, pixel i covers
        [i, i + 1)), ``m500`` (M☉), ``z``, ``theta500`` (rad), ``y_total`` (sr, with scatter).

        Per patch, from its own generator: a Poisson count, then uniform numbers choosing the
        (z, M) bin and the place within it (uniform in z and log10 M) and the position, then a
        normal deviate for the Y scatter."""
        n = ctx.geometry.npix
        mean = self._rate_per_sr * ctx.geometry.area_sr
        samples, uniforms, normals = [], [], []
        for b, rng in enumerate(ctx.random.numpy("tsz")):
            count = int(rng.poisson(mean))
            uniforms.append(rng.random((5, count)))
            normals.append(rng.standard_normal(count))
            samples.append(np.full(count, b, dtype=np.int64))
        u = np.concatenate(uniforms, axis=1)
        k = self._bin_of(u[0])
        bins = self._bins
        z = bins["z_lo"][k] + u[1] * bins["dz"][k]
        da = bins["da_lo"][k] + u[1] * bins["dda"][k]
        log10_m = bins["m_lo"][k] + u[2] * bins["dm"][k]
        ln_e2, ln_da = 2.0 * np.log(self.background.e_of_z(z)), np.log(da)
        ln_m = log10_m * math.log(10.0)
        # R500 = [3 M / (4π 500 ρ_c(z))]^(1/3);  Y = norm E^β M^α 10^(σ N) / D_A²
        ln_c = math.log(3.0 / (4.0 * math.pi * 500.0 * self.background.rho_crit0))
        theta = np.exp((ln_c + ln_m - ln_e2) / 3.0 - ln_da)
        ln_y = (math.log(self._y_norm) + 0.5 * self.y_redshift_slope * ln_e2
                + self.y_mass_slope * ln_m - 2.0 * ln_da
                + self.y_scatter_dex * math.log(10.0) * np.concatenate(normals))
        return {"sample": np.concatenate(samples), "x": u[3] * n, "y": u[4] * n,
                "m500": np.exp(ln_m), "z": z, "theta500": theta, "y_total": np.exp(ln_y)}

    def _bin_of(self, u: np.ndarray) -> np.ndarray:
        """The halo bin of each uniform deviate u ∈ [0, 1), drawn with the bins' probabilities
        by Walker's alias method."""
        if "alias" not in self._state:
            self._state["alias"] = alias_sampler.alias_table(self._prob)
        return alias_sampler.draw(self._state["alias"], u)

    # -- painting --------------------------------------------------------------------------

    def _painter(self, geometry: PatchGeometry, device: torch.device) -> dict:
        """Per (grid, device): the stamp profile table, the θ500 group edges (pixels) and the
        group kernels on the rfft2 grid."""
        key = (geometry.npix, geometry.pixel_arcsec, str(device))
        if key not in self._state:
            self._state[key] = self._build_painter(geometry, device)
        return self._state[key]

    def _build_painter(self, geometry: PatchGeometry, device: torch.device) -> dict:
        pix = geometry.pixel_rad
        s_bins = self._bin_theta / pix
        s_stamp = self.stamp_min_theta500_pix
        small = (s_bins < s_stamp) & (self._bin_weight > 0)
        s_lo = float(s_bins[small].min()) if small.any() else 0.5 * s_stamp
        s_lo = min(s_lo, 0.5 * s_stamp)
        edges = np.geomspace(s_lo, s_stamp, self.kernel_groups + 1)
        group = np.searchsorted(edges[1:-1], s_bins, side="right")
        q, p = profile_transform(self.profile)
        # A_g(ℓ) = Σ_j w_j P²(ℓ θ_j) / Σ_j w_j over the (z, M) bins of the group, weighted by the
        # expected number times Y², on a 1-D ℓ grid reaching the last alias used below.
        ell_max = (2 * _ALIASES + 1) * geometry.ell_nyquist * math.sqrt(2.0) * 1.01
        ell_1d = np.linspace(0.0, ell_max, 4096)
        hist_edges = np.geomspace(1e-3, s_stamp, 257)
        kernels = []
        for g in range(self.kernel_groups):
            sel = small & (group == g)
            if sel.any():
                w, _ = np.histogram(s_bins[sel], hist_edges, weights=self._bin_weight[sel])
                s_mid = np.sqrt(hist_edges[1:] * hist_edges[:-1])
                keep = w > 0
                w, s_mid = w[keep], s_mid[keep]
            else:
                w, s_mid = np.ones(1), np.array([math.sqrt(edges[g] * edges[g + 1])])
            pq = np.interp(ell_1d[:, None] * s_mid[None, :] * pix, q, p, right=0.0)
            a_ell = (pq**2 @ w) / w.sum()
            kernels.append(_alias_kernel(ell_1d, a_ell, geometry))
        # the table must reach the corners of every stamp: (h + ½)√2 for the smallest θ500 that
        # is given a stamp of half-width h
        widths = self._stamp_widths(geometry.npix)
        extent, prev = 1.0, 0
        for h in widths:
            s_lo = max(s_stamp, (prev - 0.5) / self.truncation_r500)
            extent = max(extent, math.sqrt(2.0) * (h + 0.5) / (self.truncation_r500 * s_lo))
            prev = h
        n_rows = max(1, math.ceil(math.log(max(_STAMP_ROW_MAX / s_stamp, 1.0)) / _STAMP_ROW_DLN))
        rows = tuple(float(r) for r in s_stamp * np.exp(_STAMP_ROW_DLN * np.arange(n_rows + 1)))
        table = torch.from_numpy(stamp_table(self.profile, extent, rows)).to(torch.float32)
        return {
            "edges": torch.tensor(edges[1:-1], dtype=torch.float32, device=device),
            "kernels": torch.stack(kernels).to(torch.float32).to(device),
            "table": table.to(device),
            "rows": (math.log(rows[0]), _STAMP_ROW_DLN, len(rows)),
        }

    def paint_y(
        self,
        sample: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        theta500_pix: torch.Tensor,
        y_total_sr: torch.Tensor,
        batch: int,
        geometry: PatchGeometry,
    ) -> torch.Tensor:
        """Compton-y maps ``(batch, n, n)`` float32 of clusters at pixel coordinates (x, y) with
        θ500 in pixels and integrated Y (within the truncation radius) in sr.

        Each cluster's map sums to Y / Ω_pix (unless it is larger than the largest stamp the
        grid holds, (n − 1)/2 pixels, in which case it is cut there)."""
        n = geometry.npix
        out = torch.empty((batch, n, n), dtype=torch.float32, device=x.device)
        for b0, maps in self._paint_chunks(sample, x, y, theta500_pix, y_total_sr, batch,
                                           geometry):
            out[b0:b0 + maps.shape[0]] = maps
        return out

    def _paint_chunks(self, sample, x, y, theta500_pix, y_total_sr, batch, geometry):
        """Yield ``(b0, maps)``: the y maps ``(nb, n, n)`` of patches b0 … b0 + nb − 1, a few
        patches at a time on the CPU (small FFT buffers are much faster to allocate there), the
        whole batch at once elsewhere."""
        device = x.device
        n = geometry.npix
        painter = self._painter(geometry, device)
        groups = painter["kernels"].shape[0]
        step = batch if device.type != "cpu" else max(1, _CHUNK // (groups * n * n))
        sample = sample.to(torch.int64)
        if sample.numel() > 1 and bool((sample[1:] < sample[:-1]).any()):
            order = torch.argsort(sample, stable=True)
            sample, x, y, theta500_pix, y_total_sr = (
                t[order] for t in (sample, x, y, theta500_pix, y_total_sr))
        starts = torch.arange(0, batch + step, step, device=device).clamp(max=batch)
        bounds = torch.searchsorted(sample, starts).tolist()
        s_all = theta500_pix.to(torch.float32)
        amp_all = (y_total_sr / geometry.pixel_area_sr).to(torch.float32)
        # resolved clusters: stamps for the whole batch at once, in a map of their own
        big = torch.nonzero(s_all >= self.stamp_min_theta500_pix).squeeze(1)
        stamps = None
        if big.numel():
            stamps = torch.zeros(batch * n * n, dtype=torch.float32, device=device)
            self._paint_stamps(stamps, big, x, y, s_all, amp_all, sample * (n * n), n, painter)
            stamps = stamps.view(batch, n, n)
        for c, b0 in enumerate(range(0, batch, step)):
            nb = min(step, batch - b0)
            lo, hi = bounds[c], bounds[c + 1]
            s = s_all[lo:hi]
            # small clusters: deposit in their pixel, one grid per θ500 group, convolve by FFT
            small = torch.nonzero(s < self.stamp_min_theta500_pix).squeeze(1) + lo
            if small.numel():
                grp = torch.bucketize(s_all[small], painter["edges"], right=True)
                dep = torch.zeros(groups * nb * n * n, dtype=torch.float32, device=device)
                ix = torch.floor(x[small]).to(torch.int64) % n
                iy = torch.floor(y[small]).to(torch.int64) % n
                flat = grp * (nb * n * n) + (sample[small] - b0) * (n * n) + iy * n + ix
                dep.index_add_(0, flat, amp_all[small])
                four = _rfft2(dep.view(groups, nb, n, n))
                four *= painter["kernels"][:, None]
                maps = _irfft2(four.sum(0) if groups > 1 else four[0], n)
                if stamps is not None:
                    maps += stamps[b0:b0 + nb]
            elif stamps is not None:
                maps = stamps[b0:b0 + nb]
            else:
                maps = torch.zeros((nb, n, n), dtype=torch.float32, device=device)
            yield b0, maps

    def _stamp_widths(self, n: int) -> list[int]:
        """Stamp half-widths available on a grid of ``n`` pixels."""
        return sorted({min(h, (n - 1) // 2) for h in STAMP_HALF_WIDTHS})

    def _paint_stamps(self, out, idx_all, x, y, s, amp, base, n, painter) -> None:
        """Add the clusters ``idx_all`` to the flat maps ``out`` on square stamps around them
        (half-width ⌈x_max θ500 + ½⌉ pixels, so the truncation circle fits, rounded up to one of
        :data:`STAMP_HALF_WIDTHS`), the pixel-averaged profile of the nearest θ500 row of the
        table (:func:`_stamp_table`) looked up at each pixel centre, each stamp normalised to the
        cluster's Y."""
        device = out.device
        table = painter["table"]
        ln_s0, dln, n_rows = painter["rows"]
        n_tab = table.shape[1]
        flat_table = table.view(-1)
        h_need = torch.ceil(self.truncation_r500 * s[idx_all] + 0.5)
        widths = torch.tensor(self._stamp_widths(n), dtype=torch.float32, device=device)
        cls = torch.bucketize(h_need, widths).clamp(max=widths.numel() - 1)
        capped = h_need > widths[-1]
        itype = torch.int32 if out.numel() < 2**31 else torch.int64
        for k in torch.unique(cls).tolist():
            h = int(widths[k])
            members = torch.nonzero(cls == k).squeeze(1)
            size = 2 * h + 1
            off = torch.arange(-h, h + 1, device=device)
            offf = off.to(torch.float32) + 0.5
            per_chunk = max(1, _CHUNK // (size * size))
            for start in range(0, members.numel(), per_chunk):
                sel = members[start:start + per_chunk]
                idx = idx_all[sel]
                m = idx.numel()
                si = s[idx]
                row = torch.round((torch.log(si) - ln_s0) / dln).clamp(0, n_rows - 1)
                ix0, iy0 = torch.floor(x[idx]), torch.floor(y[idx])
                # distance from the cluster in table entries, (m, S, S), then the row offset
                c2 = ((TABLE_DENSITY / (self.truncation_r500 * si)) ** 2)[:, None]
                dx2 = (offf[None, :] - (x[idx] - ix0).to(torch.float32)[:, None]) ** 2 * c2
                dy2 = (offf[None, :] - (y[idx] - iy0).to(torch.float32)[:, None]) ** 2 * c2
                pos = (dy2[:, :, None] + dx2[:, None, :]).sqrt_()
                if capped[sel].any():
                    pos.clamp_(max=n_tab - 1)
                pos += (row * n_tab)[:, None, None]
                prof = flat_table[pos.to(torch.int32)].view(m, -1)
                norm = torch.where(capped[sel], 1.0 / si**2, 1.0 / prof.sum(1))
                prof.mul_((amp[idx] * norm)[:, None])
                rows = (iy0.to(torch.int64)[:, None] + off[None, :]) % n
                cols = (ix0.to(torch.int64)[:, None] + off[None, :]) % n
                flat = ((base[idx, None] + rows * n).to(itype)[:, :, None]
                        + cols.to(itype)[:, None, :])
                out.index_add_(0, flat.view(-1), prof.view(-1))

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        """Build the profile table and the group kernels for ``geometry`` on ``device``."""
        self._painter(geometry, torch.device(device))

    def _catalogue_tensors(self, ctx: SkyContext) -> tuple:
        cat = self.draw_catalogue(ctx)
        dev = ctx.device

        def t(a, dtype=torch.float64):
            return torch.as_tensor(a, dtype=dtype).to(dev)

        return (t(cat["sample"], torch.int64), t(cat["x"]), t(cat["y"]),
                t(cat["theta500"] / ctx.geometry.pixel_rad), t(cat["y_total"]), ctx.batch,
                ctx.geometry)

    def y_map(self, ctx: SkyContext) -> torch.Tensor:
        """Compton-y maps ``(batch, n, n)`` float32 for the batch."""
        return self.paint_y(*self._catalogue_tensors(ctx))

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """tSZ maps in µK_CMB, ``(batch, n_bands, n, n)`` float32, before the beam."""
        kcmb = torch.tensor(
            [self.scale * b.tsz_kcmb_per_y * 1e6 for b in ctx.instrument.bands],
            dtype=torch.float32, device=ctx.device,
        )[None, :, None, None]
        n = ctx.geometry.npix
        out = torch.empty((ctx.batch, kcmb.shape[1], n, n), dtype=torch.float32,
                          device=ctx.device)
        for b0, maps in self._paint_chunks(*self._catalogue_tensors(ctx)):
            torch.mul(maps[:, None], kcmb, out=out[b0:b0 + maps.shape[0]])
        return out


def _alias_kernel(ell_1d: np.ndarray, a_ell: np.ndarray, geometry: PatchGeometry) -> torch.Tensor:
    """The real kernel K on the rfft2 grid with K² = Σ_m A(|ℓ + 2πm/Δ|) Π²(ℓ + 2πm/Δ), summed
    over aliases m ∈ [−_ALIASES, _ALIASES]², Π the top-hat pixel window: the spectrum of pixel
    averages of a profile of power A at a random position, given to a deposit in one pixel.
    K(0) = 1 (Y is conserved)."""
    n, d = geometry.npix, geometry.pixel_rad
    fy = np.fft.fftfreq(n)[:, None]  # cycles per pixel
    fx = np.fft.rfftfreq(n)[None, :]
    k2 = np.zeros((n, n // 2 + 1))
    for my in range(-_ALIASES, _ALIASES + 1):
        wy = np.sinc(fy + my) ** 2
        for mx in range(-_ALIASES, _ALIASES + 1):
            ell = 2.0 * math.pi / d * np.hypot(fy + my, fx + mx)
            k2 += np.interp(ell, ell_1d, a_ell) * wy * np.sinc(fx + mx) ** 2
    return torch.from_numpy(np.sqrt(k2 / k2[0, 0]))
