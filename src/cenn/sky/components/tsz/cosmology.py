"""The flat ΛCDM background of the cluster population (tSZ): expansion rate, distances and the
critical density, from astropy.cosmology.

The background is given as the halo-counts table records it (``scripts/make_tsz_counts.py``, from
CAMB): ``h``, Ω_m today including massive neutrinos (they are non-relativistic at the redshifts
used), and Ω_r, the radiation still relativistic (photons and massless neutrinos). In astropy this is
a :class:`~astropy.cosmology.FlatLambdaCDM` with Ω_m, the FIRAS CMB temperature and the number of
massless neutrino species that gives Ω_r; Ω_Λ = 1 − Ω_m − Ω_r.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from scipy.interpolate import CubicSpline

T_CMB_K = 2.7255
"""CMB temperature today, K (Fixsen 2009, ApJ 707, 916)."""
NU_PER_PHOTON = 7.0 / 8.0 * (4.0 / 11.0) ** (4.0 / 3.0)
"""Energy density of one massless neutrino species over that of the photons."""
_Z_TABLE = np.concatenate([np.linspace(0.0, 0.1, 41)[:-1], np.geomspace(0.1, 12.0, 400)])
"""Redshifts at which distances are tabulated (spline error < 1e-8 up to z = 12)."""


@dataclass(frozen=True)
class Background:
    """Flat ΛCDM background: ``h``, matter (incl. massive ν) and radiation density parameters.

    Distances in Mpc (not h⁻¹ Mpc); densities in M☉ Mpc⁻³. Array arguments broadcast.
    """

    h: float
    omega_m: float
    omega_r: float = 0.0

    @functools.cached_property
    def astropy(self) -> FlatLambdaCDM:
        """The same background as an astropy cosmology."""
        if self.omega_r == 0.0:
            return FlatLambdaCDM(H0=100.0 * self.h, Om0=self.omega_m, Tcmb0=0.0)
        photons = FlatLambdaCDM(H0=100.0 * self.h, Om0=self.omega_m, Tcmb0=T_CMB_K, Neff=0.0).Ogamma0
        neff = (self.omega_r / photons - 1.0) / NU_PER_PHOTON
        if neff < 0:
            raise ValueError(f"omega_r = {self.omega_r} is below the CMB photons' {photons:.3e} alone")
        return FlatLambdaCDM(H0=100.0 * self.h, Om0=self.omega_m, Tcmb0=T_CMB_K, Neff=neff, m_nu=0.0)

    def e_of_z(self, z):
        """E(z) = H(z)/H0."""
        return self.astropy.efunc(np.asarray(z, dtype=np.float64))

    @functools.cached_property
    def _chi_spline(self) -> CubicSpline:
        chi = self.astropy.comoving_distance(_Z_TABLE).to_value(u.Mpc)
        return CubicSpline(_Z_TABLE, chi)

    def comoving_distance(self, z):
        """Line-of-sight comoving distance, Mpc (astropy's, interpolated from a table)."""
        return self._chi_spline(np.asarray(z, dtype=np.float64))

    def angular_diameter_distance(self, z):
        """D_A = χ / (1 + z), Mpc."""
        z = np.asarray(z, dtype=np.float64)
        return self.comoving_distance(z) / (1.0 + z)

    @functools.cached_property
    def rho_crit0(self) -> float:
        """Critical density today, M☉ Mpc⁻³ (physical)."""
        return float(self.astropy.critical_density0.to_value(u.Msun / u.Mpc**3))

    def rho_crit(self, z):
        """Critical density at z, M☉ Mpc⁻³ (physical)."""
        return self.rho_crit0 * self.e_of_z(z) ** 2

    def r500(self, m500, z):
        """R500 in physical Mpc for M500 in M☉."""
        return (3.0 * np.asarray(m500) / (4.0 * math.pi * 500.0 * self.rho_crit(z))) ** (1 / 3)
