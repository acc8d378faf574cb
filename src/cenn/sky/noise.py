"""Instrument noise: white Gaussian noise per pixel, with a per-pixel σ that follows the scan.

Model ``scan`` (default): the hit count of a Planck-like scanning strategy (:func:`hit_map`: circles
85° from a spin axis that follows the anti-Sun direction with a cycloidal precession, each day's
dwell time scattered), tabulated once on an equal-area grid in ecliptic coordinates; a pixel's σ is
``σ_band · sqrt(H / h)`` with ``H = 1 / ⟨1/h⟩`` over the sphere, so each band keeps its nominal
sky-averaged noise variance. Model ``white``: σ uniform (cenn's earlier noise, bit for bit).

Polarization: Q and U each carry independent white noise of σ_P = √2 σ per pixel
(:data:`POLARIZATION_NOISE_FACTOR`, :meth:`NoiseModel.draw_polarization`), with the same scan
pattern: an ideal polarimeter splits the same integration time between two orthogonal detectors
(docs/sky-model.md, "Polarization").

Parameters and sources: ``cenn/sky/data/noise.toml``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import pixel_coordinates
from cenn.sky.instrument import Instrument
from cenn.sky.rng import SampleRandom
from cenn.sky.shipped import shipped_toml

_DEFAULTS = shipped_toml("noise.toml")["parameters"]
NOISE_MODELS = ("scan", "white")
#: Random streams (:class:`cenn.sky.rng.SampleRandom`) of the full map's noise and of the
#: half-mission maps' difference term (:meth:`NoiseModel.draw_split`).
NOISE_STREAM, SPLIT_STREAM = "noise", "noise_split"
#: Random streams of the Q and U noise and of their half-mission maps' difference term
#: (:meth:`NoiseModel.draw_polarization`).
POLARIZATION_STREAM, POLARIZATION_SPLIT_STREAM = "noise_qu", "noise_qu_split"
#: σ of Q and of U over σ of I per pixel.
POLARIZATION_NOISE_FACTOR = math.sqrt(2.0)

#: Obliquity of the ecliptic at J2000 in degrees (IAU 2006: 84381.406″).
OBLIQUITY_DEG = 84381.406 / 3600.0
#: ICRS → Galactic rotation (rows: Galactic x, y, z in ICRS), Hipparcos catalogue vol. 1, Sect. 1.5.3.
ICRS_TO_GALACTIC = np.array([
    [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [+0.4941094278755837, -0.4448296299600112, +0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, +0.4559837761750669],
])


def galactic_to_ecliptic() -> np.ndarray:
    """Rotation matrix (3, 3) taking Galactic unit vectors to ecliptic (J2000) ones."""
    eps = math.radians(OBLIQUITY_DEG)
    equatorial_to_ecliptic = np.array([[1.0, 0.0, 0.0],
                                       [0.0, math.cos(eps), math.sin(eps)],
                                       [0.0, -math.sin(eps), math.cos(eps)]])
    return equatorial_to_ecliptic @ ICRS_TO_GALACTIC.T


@dataclass(frozen=True)
class NoiseConfig:
    """How the per-pixel noise σ varies over the sky (defaults and sources: ``noise.toml``).

    Angles in degrees, times in days; ``dwell_scatter`` is the lognormal width of the daily dwell time.
    """

    model: str = _DEFAULTS["model"]
    opening_angle_deg: float = _DEFAULTS["opening_angle_deg"]
    precession_amplitude_deg: float = _DEFAULTS["precession_amplitude_deg"]
    precession_period_days: float = _DEFAULTS["precession_period_days"]
    days: float = _DEFAULTS["days"]
    rings_per_day: int = _DEFAULTS["rings_per_day"]
    dwell_scatter: float = _DEFAULTS["dwell_scatter"]
    dwell_seed: int = _DEFAULTS["dwell_seed"]
    grid_lat: int = _DEFAULTS["grid_lat"]
    grid_lon: int = _DEFAULTS["grid_lon"]
    min_relative_hits: float = _DEFAULTS["min_relative_hits"]

    def __post_init__(self) -> None:
        if self.model not in NOISE_MODELS:
            raise ValueError(f"noise.model must be one of {', '.join(NOISE_MODELS)}, got {self.model!r}")
        if not 0.0 < self.opening_angle_deg <= 90.0:
            raise ValueError(f"noise.opening_angle_deg must lie in (0, 90], got {self.opening_angle_deg}")
        if not 0.0 <= self.precession_amplitude_deg < 45.0:
            raise ValueError("noise.precession_amplitude_deg must lie in [0, 45), got "
                             f"{self.precession_amplitude_deg}")
        for key in ("precession_period_days", "days"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                raise ValueError(f"noise.{key} must be a positive number of days, got {getattr(self, key)}")
        for key in ("rings_per_day", "grid_lat", "grid_lon"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 4:
                raise ValueError(f"noise.{key} must be an integer >= 4, got {getattr(self, key)!r}")
        if not 0.0 <= self.dwell_scatter < 2.0:
            raise ValueError(f"noise.dwell_scatter must lie in [0, 2), got {self.dwell_scatter}")
        if not 0.0 < self.min_relative_hits <= 1.0:
            raise ValueError(f"noise.min_relative_hits must lie in (0, 1], got {self.min_relative_hits}")


@lru_cache(maxsize=4)
def hit_map(config: NoiseConfig) -> np.ndarray:
    """Relative hit count ``h / ⟨h⟩`` on the equal-area ecliptic grid, ``(grid_lat, grid_lon)``
    float64: rows in increasing sin β from −1 to 1, columns in ecliptic longitude from 0 to 360°.

    Rings: one scan circle per ring, ``opening_angle_deg`` from the spin axis; the axis follows the
    anti-Sun direction (one turn a year) on a cycloid of ``precession_amplitude_deg``; each day's
    rings share one dwell time, lognormal with width ``dwell_scatter`` (fixed seed ``dwell_seed``).
    """
    c = config
    rng = np.random.default_rng(c.dwell_seed)
    n_days = math.ceil(c.days)
    dwell = np.exp(c.dwell_scatter * rng.standard_normal(n_days) - 0.5 * c.dwell_scatter**2)
    t = (np.arange(int(c.days * c.rings_per_day)) + 0.5) / c.rings_per_day  # days
    phase = 2.0 * np.pi * t / c.precession_period_days
    p = math.radians(c.precession_amplitude_deg)
    lat_axis = p * np.sin(phase)
    lon_axis = 2.0 * np.pi * t / 365.25 + p * np.cos(phase)
    axis = np.stack([np.cos(lat_axis) * np.cos(lon_axis), np.cos(lat_axis) * np.sin(lon_axis),
                     np.sin(lat_axis)], axis=1)
    east = np.stack([-np.sin(lon_axis), np.cos(lon_axis), np.zeros_like(lon_axis)], axis=1)
    north = np.cross(axis, east)
    weights = dwell[t.astype(int)]
    alpha = math.radians(c.opening_angle_deg)
    n_psi = 4 * c.grid_lon  # four samples per longitude cell along each circle
    psi = 2.0 * np.pi * (np.arange(n_psi) + 0.5) / n_psi
    cos_psi, sin_psi = np.cos(psi), np.sin(psi)
    hits = np.zeros((c.grid_lat, c.grid_lon))
    for start in range(0, len(t), 512):
        sl = slice(start, start + 512)
        points = (math.cos(alpha) * axis[sl, None, :]
                  + math.sin(alpha) * (cos_psi[None, :, None] * east[sl, None, :]
                                       + sin_psi[None, :, None] * north[sl, None, :]))
        sin_b = np.clip(points[..., 2], -1.0, 1.0).ravel()
        lon = np.arctan2(points[..., 1], points[..., 0]).ravel() % (2.0 * np.pi)
        row = np.minimum(((sin_b + 1.0) / 2.0 * c.grid_lat).astype(int), c.grid_lat - 1)
        col = np.minimum((lon / (2.0 * np.pi) * c.grid_lon).astype(int), c.grid_lon - 1)
        w = np.repeat(weights[sl], n_psi)
        hits += np.bincount(row * c.grid_lon + col, weights=w, minlength=hits.size).reshape(hits.shape)
    relative = hits / hits.mean()
    return np.maximum(relative, c.min_relative_hits)


def relative_sigma_table(config: NoiseConfig) -> np.ndarray:
    """σ / σ_band on the grid of :func:`hit_map`: ``sqrt(H / h)`` with ``H = 1 / ⟨1/h⟩`` (equal-area
    cells, so ⟨·⟩ is the plain mean), so that the sky average of (σ / σ_band)² is 1."""
    h = hit_map(config)
    return np.sqrt(1.0 / (h * np.mean(1.0 / h)))


class NoiseModel:
    """Per-pixel noise σ and noise draws for patches of one instrument and geometry.

    Args:
        config: the sky's noise model.
        instrument: bands and their white-noise levels (with its ``noise_scale``).
        geometry: the (cropped) patch grid the noise lives on.
        device: where σ maps and draws are made.
    """

    def __init__(self, config: NoiseConfig, instrument: Instrument, geometry: PatchGeometry,
                 device: torch.device | str = "cpu"):
        self.config, self.geometry, self.device = config, geometry, torch.device(device)
        self.band_sigma = torch.tensor(instrument.noise_uk_per_pixel(geometry), dtype=torch.float32,
                                       device=self.device)
        if config.model == "scan":
            table = torch.from_numpy(relative_sigma_table(config)).to(self.device, torch.float32)
            self._table = torch.cat([table[:, -1:], table, table[:, :1]], dim=1)[None, None]  # wrap lon
            self._rotation = torch.from_numpy(galactic_to_ecliptic()).to(self.device)

    def relative_sigma(self, lon_deg: torch.Tensor, lat_deg: torch.Tensor) -> torch.Tensor:
        """σ / σ_band at every pixel of patches centred on (lon, lat) (Galactic degrees),
        ``(batch, 1, H, W)`` float32; ones for the white model."""
        n = len(lon_deg)
        if self.config.model == "white":
            return torch.ones((n, 1, *self.geometry.shape), device=self.device)
        lon, lat = pixel_coordinates(lon_deg.to(self.device), lat_deg.to(self.device), self.geometry)
        lon, lat = torch.deg2rad(lon), torch.deg2rad(lat)
        galactic = torch.stack([torch.cos(lat) * torch.cos(lon), torch.cos(lat) * torch.sin(lon),
                                torch.sin(lat)], dim=-1)
        ecl = galactic @ self._rotation.T
        sin_beta = ecl[..., 2].clamp(-1.0, 1.0)
        lam = torch.atan2(ecl[..., 1], ecl[..., 0]) % (2.0 * math.pi)
        c = self.config
        # grid_sample coordinates (align_corners=False) over the table padded by one wrapped column
        # on each side: x = -1 at the left edge of the padding, +1 at the right edge
        x = ((lam / (2.0 * math.pi) * c.grid_lon + 1.0) / (c.grid_lon + 2)) * 2.0 - 1.0
        y = sin_beta
        grid = torch.stack([x, y], dim=-1).to(torch.float32)
        table = self._table.expand(n, -1, -1, -1)
        return F.grid_sample(table, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def sigma(self, lon_deg: torch.Tensor, lat_deg: torch.Tensor) -> torch.Tensor:
        """Per-pixel σ in µK_CMB of every band, ``(batch, n_bands, H, W)`` float32."""
        return self.relative_sigma(lon_deg, lat_deg) * self.band_sigma[None, :, None, None]

    def draw(self, random: SampleRandom, sigma: torch.Tensor) -> torch.Tensor:
        """Noise maps in µK_CMB, ``sigma``'s shape: unit normal draws of the stream ``noise`` times σ."""
        return _scaled_normal(random, NOISE_STREAM, sigma)

    def draw_split(self, random: SampleRandom, sigma: torch.Tensor) -> torch.Tensor:
        """σ·w in µK_CMB, ``sigma``'s shape ``(batch, n_bands, H, W)``, with w unit normal draws of
        the stream ``noise_split``: with the full map's noise σ·z (:meth:`draw`), the two
        half-mission maps carry σ(z + w) and σ(z − w), independent Gaussian noise of variance 2σ²
        each (half the integration time) whose mean is exactly σ·z."""
        return _scaled_normal(random, SPLIT_STREAM, sigma)

    def draw_polarization(self, random: SampleRandom, sigma: torch.Tensor,
                          split: bool = False) -> torch.Tensor:
        """Q and U noise maps in µK_CMB, ``(batch, 2, n_bands, H, W)`` for the temperature noise σ
        ``sigma`` ``(batch, n_bands, H, W)``: unit normal draws of the stream ``noise_qu`` times
        :data:`POLARIZATION_NOISE_FACTOR` σ; with ``split``, of the stream ``noise_qu_split``: the
        half-mission maps' difference term, as :meth:`draw_split` for the temperature."""
        scaled = (POLARIZATION_NOISE_FACTOR * sigma)[:, None].expand(-1, 2, -1, -1, -1)
        return _scaled_normal(random, POLARIZATION_SPLIT_STREAM if split else POLARIZATION_STREAM, scaled)

    def parameters(self) -> dict:
        """The resolved configuration, for provenance."""
        return asdict(self.config)


def _scaled_normal(random: SampleRandom, stream: str, sigma: torch.Tensor) -> torch.Tensor:
    """Unit normal draws of ``stream`` times ``sigma`` ``(batch, ...)``, µK_CMB, ``sigma``'s shape."""
    draws = random.normal(stream, tuple(sigma.shape[1:]))
    return draws * sigma.to(draws.dtype)
