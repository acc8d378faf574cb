"""Regenerate the shipped tSZ halo-count table ``cenn/sky/data/tsz_halo_counts.csv`` (needs CAMB).

Expected number of halos per steradian in bins of (z, log10 M500/M☉) for the Planck 2018 best
fit (``cenn.sky.components.cmb.spectrum.PLANCK2018_BESTFIT``):

    dN/(dz dΩ dlnM) = dn/dlnM(M, z) · c χ(z)² / H(z),
    dn/dlnM = f(σ) ρ̄ d ln σ⁻¹ / d ln M,                 (Tinker et al. 2008, Eq. 2)
    f(σ) = A [(σ/b)^−a + 1] exp(−c/σ²),                  (Eq. 3)
    A = A0 (1+z)^−0.14, a = a0 (1+z)^−0.06, b = b0 (1+z)^−α,
    log10 α = −[0.75 / log10(Δ/75)]^1.2,                  (Eqs. 5–8)

with (A0, a0, b0, c) interpolated linearly in log10 Δ in Table 2, and Δ = 500 ρ_c(z) / ρ̄(z) the
M500c threshold relative to the mean density. With a massive neutrino, ρ̄ and σ(M) are those of
cold dark matter + baryons (σ from CAMB's linear ``delta_nonu`` power spectrum; Costanzi et al.
2013), M = 4π/3 ρ̄₀ R³ in comoving units. Each bin is integrated with 4×4 Gauss–Legendre nodes.

Usage: python scripts/make_tsz_counts.py [output.csv]
"""

from __future__ import annotations

import sys
from importlib import resources

import numpy as np

from cenn.sky.components.cmb.spectrum import PLANCK2018_BESTFIT
from cenn.sky.components.tsz.cosmology import Background
from cenn.sky.components.tsz.halo_counts import HaloCounts

TINKER_DELTA = np.array([200, 300, 400, 600, 800, 1200, 1600, 2400, 3200], dtype=float)
TINKER_A0 = np.array([0.186, 0.200, 0.212, 0.218, 0.248, 0.255, 0.260, 0.260, 0.260])
TINKER_LA0 = np.array([1.47, 1.52, 1.56, 1.61, 1.87, 2.13, 2.30, 2.53, 2.66])
TINKER_B0 = np.array([2.57, 2.25, 2.05, 1.87, 1.59, 1.51, 1.46, 1.44, 1.41])
TINKER_C = np.array([1.19, 1.27, 1.34, 1.45, 1.58, 1.80, 1.97, 2.24, 2.44])
"""Tinker et al. 2008 (ApJ 688, 709) Table 2: Δ (w.r.t. mean density), A0, a0, b0, c."""

LOG10M_EDGES = np.round(np.arange(13.5, 16.0 + 1e-9, 0.025), 6)
Z_EDGES = np.geomspace(0.01, 3.0, 151)
C_KMS = 299792.458


def tinker_f(sigma: np.ndarray, z: float, delta_mean: float) -> np.ndarray:
    """Tinker+2008 multiplicity f(σ) at redshift z for overdensity Δ w.r.t. the mean density."""
    ld = np.log10(delta_mean)
    lt = np.log10(TINKER_DELTA)
    a0, la0, b0, c = (np.interp(ld, lt, t) for t in (TINKER_A0, TINKER_LA0, TINKER_B0, TINKER_C))
    alpha = 10.0 ** (-((0.75 / np.log10(delta_mean / 75.0)) ** 1.2))
    big_a = a0 * (1 + z) ** -0.14
    a = la0 * (1 + z) ** -0.06
    b = b0 * (1 + z) ** -alpha
    return big_a * ((sigma / b) ** -a + 1.0) * np.exp(-c / sigma**2)


def top_hat(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    small = x < 1e-3
    xs = x[~small]
    out[~small] = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    out[small] = 1.0 - x[small] ** 2 / 10.0
    return out


def main(out_path: str | None = None) -> None:
    import camb

    p = PLANCK2018_BESTFIT
    cosmo = {k: v for k, v in p.items() if k not in {"As", "ns"}}
    pars = camb.set_params(**cosmo, As=p["As"], ns=p["ns"], num_massive_neutrinos=1,
                           WantTransfer=True)
    results = camb.get_background(pars)
    h = p["H0"] / 100.0
    omega_m = (pars.ombh2 + pars.omch2 + pars.omnuh2) / h**2
    omega_cb = (pars.ombh2 + pars.omch2) / h**2
    omega_r = 1.0 - omega_m - results.get_Omega("de", z=0.0)
    bg = Background(h, omega_m, omega_r)
    zt = np.array([0.01, 0.1, 0.5, 1.0, 2.0, 3.0])
    da_camb = results.angular_diameter_distance(zt)
    err = np.max(np.abs(bg.angular_diameter_distance(zt) / da_camb - 1))
    print(f"Omega_m = {omega_m:.5f}, Omega_cb = {omega_cb:.5f}, Omega_r = {omega_r:.3e}; "
          f"max |D_A/D_A(CAMB) - 1| = {err:.1e}")
    assert err < 1e-3

    # Gauss-Legendre nodes inside each bin
    t, w = np.polynomial.legendre.leggauss(4)
    zl, zh = Z_EDGES[:-1], Z_EDGES[1:]
    z_nodes = (0.5 * (zh - zl)[:, None] * t[None, :] + 0.5 * (zh + zl)[:, None])  # (nz, 4)
    z_w = 0.5 * (zh - zl)[:, None] * w[None, :]
    ml, mh = LOG10M_EDGES[:-1], LOG10M_EDGES[1:]
    lm_nodes = (0.5 * (mh - ml)[:, None] * t[None, :] + 0.5 * (mh + ml)[:, None]).ravel()
    lm_w = (0.5 * (mh - ml)[:, None] * w[None, :]).ravel()

    zs = np.sort(np.unique(np.concatenate([[0.0], z_nodes.ravel()])))
    pk = camb.get_matter_power_interpolator(
        pars, zmin=0.0, zmax=3.2, nz_step=150, kmax=50.0, nonlinear=False,
        var1="delta_nonu", var2="delta_nonu", hubble_units=False, k_hunit=False,
        extrap_kmax=1e4,
    )
    k = np.geomspace(1e-5, 1e3, 6000)
    lnk = np.log(k)
    rho_cb0 = bg.rho_crit0 * omega_cb  # comoving M☉ / Mpc³
    # σ on a mass grid wider than the nodes, for the derivative
    lm_grid = np.linspace(13.0, 16.5, 281)
    radius = (3.0 * 10.0**lm_grid / (4.0 * np.pi * rho_cb0)) ** (1 / 3)
    w2 = top_hat(k[None, :] * radius[:, None]) ** 2  # (nM, nk)

    dens = {}
    for z in zs:
        pz = pk.P(z, k)
        integrand = w2 * (pz * k**3 / (2 * np.pi**2))[None, :]
        sig = np.sqrt(np.sum(0.5 * (integrand[:, 1:] + integrand[:, :-1]) * np.diff(lnk), axis=1))
        dlns_dlnm = np.gradient(np.log(sig), lm_grid * np.log(10.0))
        s_nodes = np.exp(np.interp(lm_nodes, lm_grid, np.log(sig)))
        d_nodes = np.interp(lm_nodes, lm_grid, dlns_dlnm)
        omega_cb_z = omega_cb * (1 + z) ** 3 / bg.e_of_z(z) ** 2
        delta_mean = 500.0 / omega_cb_z
        f = tinker_f(s_nodes, z, delta_mean)
        dn_dlnm = f * rho_cb0 / 10.0**lm_nodes * (-d_nodes)  # comoving Mpc⁻³
        chi = results.comoving_radial_distance(z)
        dv_dz = C_KMS * chi**2 / (100.0 * h * bg.e_of_z(z))  # Mpc³ / sr
        dens[z] = dn_dlnm * np.log(10.0) * dv_dz  # per sr per unit z per dex
        if z == 0.0:
            r8 = 8.0 / h
            s8 = np.sqrt(np.sum(0.5 * np.diff(lnk) * (
                (top_hat(k * r8) ** 2 * pz * k**3)[1:] + (top_hat(k * r8) ** 2 * pz * k**3)[:-1]
            )) / (2 * np.pi**2))
            print(f"sigma_8 of CDM+baryons at z = 0: {s8:.4f} (Planck 2018 sigma_8 = 0.811)")

    counts = np.zeros((zl.size, ml.size))
    for i in range(zl.size):
        for j, zn in enumerate(z_nodes[i]):
            per = dens[zn] * lm_w
            counts[i] += z_w[i, j] * per.reshape(ml.size, 4).sum(1)
    meta = {
        "cosmology": p,
        "background": {"h": h, "omega_m": omega_m, "omega_r": omega_r, "omega_cb": omega_cb},
        "mass_function": "Tinker et al. 2008, Delta = 500 rho_crit(z), CDM+baryon sigma(M) "
                         "from CAMB linear power",
        "mass_definition": "M500c in M_sun",
    }
    table = HaloCounts(Z_EDGES, LOG10M_EDGES, counts, meta)
    description = (
        "Expected number of halos per steradian in bins of redshift (rows) and log10 M500/M_sun\n"
        "(columns), Tinker+2008 mass function, Planck 2018 best fit. Made by\n"
        "scripts/make_tsz_counts.py with CAMB " + camb.__version__ + "."
    )
    target = out_path or str(resources.files("cenn.sky") / "data" / "tsz_halo_counts.csv")
    table.write(target, description)
    sr_per_deg2 = (np.pi / 180) ** 2
    for lo in (13.7, 14.0, 14.5, 15.0):
        nper = table.number_per_sr(lo, 16.0, 0.01, 3.0) * sr_per_deg2
        print(f"N(M500 > 10^{lo}) = {nper:.3f} per deg^2")
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
