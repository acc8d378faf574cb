"""Property-based tests (hypothesis) of the patch projections, the flat-sky spectra, the
normalisation round trips and the unit conversions.

Every test runs a fixed, derandomized set of examples with no example database, so CI sees the same
examples on every run. Random maps come from ``numpy.random.default_rng(seed)`` with the seed drawn by
hypothesis.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from cenn.data.normalization import available_normalizations, build_normalization
from cenn.sky import units
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.flat.projection import (
    draw_centres,
    forward_gnomonic,
    patch_position,
    pixel_coordinates,
    pixel_directions,
    unit_vectors,
)
from cenn.sky.flat.spectra import Binning, SpectrumEstimator, power_spectrum
from cenn.sky.rng import SampleRandom


def fixed(max_examples: int) -> settings:
    """Reproducible settings: the same examples on every run, nothing stored between runs."""
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats spread evenly in log between ``low`` and ``high`` (both > 0)."""
    return st.floats(math.log10(low), math.log10(high)).map(lambda e: 10.0**e)


SEEDS = st.integers(0, 2**32 - 1)

# ---------------------------------------------------------------------------------------------------
# Projections: cenn.sky.flat.projection, in numpy (pixel_directions) and in torch (pixel_coordinates)
# ---------------------------------------------------------------------------------------------------

# PatchGeometry refuses npix < 8, so the smallest patch drawn is 8 × 8.
GEOMETRIES = st.builds(PatchGeometry, npix=st.integers(8, 64), pixel_arcsec=st.floats(30.0, 1800.0))
LONS = st.floats(0.0, 360.0, exclude_max=True)
LATS = st.one_of(st.sampled_from([-90.0, 90.0, 0.0]), st.floats(-90.0, 90.0))
PROJECTIONS = st.sampled_from(["gnomonic", "cartesian"])

POLE_GAP_RAD = 1e-5
"""Pixel centres closer than this to a pole (but not on it) lose precision in (l, b): see
:func:`test_round_trip_near_a_pole` (xfail, a known precision bug); the general round-trip tests
leave them out."""


def plane_offsets(geometry: PatchGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Plane coordinates (x towards the east, y towards the north) of pixel ``[row, col]``, in
    radians, as the module docstrings define them: broadcastable ``(n, 1)`` and ``(1, n)``."""
    off = (np.arange(geometry.npix) - (geometry.npix - 1) / 2.0) * geometry.pixel_rad
    return -off[None, :], off[:, None]


def reference_vectors(lon0: float, lat0: float, geometry: PatchGeometry, projection: str) -> np.ndarray:
    """Unit vectors ``(n, n, 3)`` of the pixel centres, straight from the docstrings' definitions."""
    x, y = plane_offsets(geometry)
    x, y = np.broadcast_arrays(x, y)
    if projection == "gnomonic":
        a, e, n = np.ones_like(x), x, y
        norm = np.sqrt(1.0 + x**2 + y**2)
        a, e, n = a / norm, e / norm, n / norm
    else:
        a, e, n = np.cos(y) * np.cos(x), np.cos(y) * np.sin(x), np.sin(y)
    lon, lat = math.radians(lon0), math.radians(lat0)
    centre = np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
    east = np.array([-math.sin(lon), math.cos(lon), 0.0])
    north = np.array([-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)])
    return a[..., None] * centre + e[..., None] * east + n[..., None] * north


def near_a_pole(lon0: float, lat0: float, geometry: PatchGeometry, projection: str) -> bool:
    """Whether a pixel centre lies within :data:`POLE_GAP_RAD` of a pole without sitting on it."""
    v = reference_vectors(lon0, lat0, geometry, projection)
    pole_distance = np.arcsin(np.minimum(np.hypot(v[..., 0], v[..., 1]), 1.0))
    return bool(np.any((pole_distance > 1e-12) & (pole_distance < POLE_GAP_RAD)))


def angle_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Angle in radians between unit vectors ``(..., 3)``, accurate for small and large angles."""
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1))


def assert_integer_grid(row: np.ndarray, col: np.ndarray, npix: int, atol_px: float = 1e-6) -> None:
    index = np.arange(npix, dtype=np.float64)
    assert row.shape == col.shape == (npix, npix)
    np.testing.assert_allclose(row, np.broadcast_to(index[:, None], row.shape), rtol=0, atol=atol_px)
    np.testing.assert_allclose(col, np.broadcast_to(index[None, :], col.shape), rtol=0, atol=atol_px)


@fixed(60)
@given(lon0=LONS, lat0=LATS, geometry=GEOMETRIES, projection=PROJECTIONS)
def test_patch_position_inverts_pixel_directions(lon0, lat0, geometry, projection):
    """patch_position(pixel_directions(centre)) is the integer pixel grid to 1e-6 px, poles included."""
    assume(not near_a_pole(lon0, lat0, geometry, projection))
    lon, lat = pixel_directions(np.array([lon0]), np.array([lat0]), geometry, projection)
    assert lon.shape == lat.shape == (1, geometry.npix, geometry.npix)
    assert np.all((lon >= 0.0) & (lon < 360.0)) and np.all(np.abs(lat) <= 90.0)
    row, col = patch_position(lon[0], lat[0], lon0, lat0, geometry, projection)
    assert_integer_grid(row, col, geometry.npix)


@fixed(40)
@given(lon0=LONS, lat0=LATS, geometry=GEOMETRIES)
def test_gnomonic_directions_are_the_simulators(lon0, lat0, geometry):
    """pixel_directions (gnomonic) and cenn.sky.flat.projection.pixel_coordinates give the same unit
    vectors (to 1e-6 px), and forward_gnomonic inverts pixel_coordinates to the integer grid."""
    assume(not near_a_pole(lon0, lat0, geometry, "gnomonic"))
    lon, lat = pixel_directions(np.array([lon0]), np.array([lat0]), geometry, "gnomonic")
    sim_lon, sim_lat = (t.numpy() for t in pixel_coordinates(
        torch.tensor([lon0], dtype=torch.float64), torch.tensor([lat0], dtype=torch.float64), geometry))
    assert sim_lon.shape == lon.shape
    assert np.all((sim_lon >= 0.0) & (sim_lon < 360.0))
    gap = angle_between(unit_vectors(lon, lat), unit_vectors(sim_lon, sim_lat))
    assert gap.max() < 1e-6 * geometry.pixel_rad
    row, col = forward_gnomonic(sim_lon[0], sim_lat[0], lon0, lat0, geometry)
    assert_integer_grid(row, col, geometry.npix)


@fixed(60)
@given(lon0=LONS, lat0=LATS, geometry=GEOMETRIES, projection=PROJECTIONS)
def test_distances_from_the_centre_match_the_geometry(lon0, lat0, geometry, projection):
    """Every pixel lies at the angle the projection puts it from the centre: atan(ρ) (gnomonic) or
    arccos(cos x cos y) (cartesian); so the centre pixel of an odd patch is the centre and the four
    central pixels of an even patch are atan(θ/√2) (gnomonic) away."""
    assume(not near_a_pole(lon0, lat0, geometry, projection))
    lon, lat = pixel_directions(np.array([lon0]), np.array([lat0]), geometry, projection)
    got = angle_between(unit_vectors(lon[0], lat[0]), unit_vectors(lon0, lat0))
    x, y = plane_offsets(geometry)
    if projection == "gnomonic":
        expected = np.arctan(np.hypot(x, y))
    else:
        sin_d = np.sqrt(np.sin(x) ** 2 + np.cos(x) ** 2 * np.sin(y) ** 2)
        expected = np.arctan2(sin_d, np.cos(x) * np.cos(y))
    tolerance = 1e-6 * geometry.pixel_rad
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
    n, theta = geometry.npix, geometry.pixel_rad
    middle = got[(n - 1) // 2 : n // 2 + 1, (n - 1) // 2 : n // 2 + 1]
    if n % 2:
        assert middle.shape == (1, 1) and middle[0, 0] < tolerance
    else:
        corner = math.atan(theta / math.sqrt(2.0)) if projection == "gnomonic" else math.acos(
            math.cos(theta / 2.0) ** 2)
        assert middle.shape == (2, 2)
        np.testing.assert_allclose(middle, corner, rtol=0, atol=tolerance)


@fixed(40)
@given(lon0=LONS, lat0=st.floats(-60.0, 60.0), geometry=GEOMETRIES, projection=PROJECTIONS)
def test_rows_run_north_and_columns_run_west(lon0, lat0, geometry, projection):
    """Away from the poles (|b0| ≤ 60°, so a patch of at most 32° never reaches one), latitude rises
    strictly along every column as the row grows and longitude falls strictly along every row as the
    column grows."""
    lon, lat = pixel_directions(np.array([lon0]), np.array([lat0]), geometry, projection)
    lon, lat = lon[0], lat[0]
    assert np.all(np.diff(lat, axis=0) > 0.0)
    step_lon = (np.diff(lon, axis=1) + 180.0) % 360.0 - 180.0
    assert np.all(step_lon < 0.0)


NEAR_POLE_BUG = (
    "precision bug: {where} takes b = arcsin(z), which loses ~eps/d rad for a pixel centre d rad from a "
    "pole (up to ~1.5e-8 rad, 1e-4 px of 30″), so the round trip misses the 1e-6 px that holds elsewhere; "
    "b = arctan2(z, hypot(x, y)) brings it back to ~1e-12 px")


@pytest.mark.parametrize("source", [
    "healpix",
    "simulator",
])
@fixed(10)
@example(lon0=0.0, north=True, gap_deg=1e-7, npix=4, pixel_arcsec=30.0, projection="gnomonic")
@given(lon0=LONS, north=st.booleans(), gap_deg=log_uniform(1e-8, 1e-5), npix=st.integers(4, 32),
       pixel_arcsec=st.floats(30.0, 120.0), projection=PROJECTIONS)
def test_round_trip_near_a_pole(source, lon0, north, gap_deg, npix, pixel_arcsec, projection):
    """An odd patch whose centre pixel sits a hair (1e-8 to 1e-5 degrees) from a pole: the round trip
    through pixel_directions (``healpix``, both projections) or pixel_coordinates (``simulator``,
    gnomonic) still gives the integer grid to 1e-6 px."""
    geometry = PatchGeometry(2 * npix + 1, pixel_arcsec)
    lat0 = (90.0 - gap_deg) * (1.0 if north else -1.0)
    if source == "healpix":
        lon, lat = pixel_directions(np.array([lon0]), np.array([lat0]), geometry, projection)
    else:
        projection = "gnomonic"
        lon, lat = (t.numpy() for t in pixel_coordinates(
            torch.tensor([lon0], dtype=torch.float64), torch.tensor([lat0], dtype=torch.float64), geometry))
    row, col = patch_position(lon[0], lat[0], lon0, lat0, geometry, projection)
    assert_integer_grid(row, col, geometry.npix)


@fixed(30)
@given(seed=st.integers(0, 2**31), first=st.integers(0, 10**6), batch=st.integers(1, 8),
       band=st.tuples(st.floats(0.0, 90.0), st.floats(0.0, 90.0)).filter(lambda b: b[0] != b[1]))
def test_drawn_centres_lie_in_the_band(seed, first, batch, band):
    """draw_centres: float64 (batch,), l in [0, 360), lat_min ≤ |b| ≤ lat_max (to float rounding of
    the arcsine, 1e-9°), and the same seed and indices give the same centres."""
    lat_min, lat_max = sorted(band)
    random = SampleRandom(seed, range(first, first + batch))
    lon, lat = draw_centres(random, lat_min, lat_max)
    assert lon.dtype == lat.dtype == torch.float64 and lon.shape == lat.shape == (batch,)
    assert torch.all((lon >= 0.0) & (lon < 360.0))
    assert torch.all(lat.abs() >= lat_min - 1e-9) and torch.all(lat.abs() <= lat_max + 1e-9)
    again = draw_centres(SampleRandom(seed, range(first, first + batch)), lat_min, lat_max)
    assert torch.equal(again[0], lon) and torch.equal(again[1], lat)


# ---------------------------------------------------------------------------------------------------
# Spectra: cenn.sky.flat.spectra
# ---------------------------------------------------------------------------------------------------

SPECTRUM_GEOMETRIES = st.builds(PatchGeometry, npix=st.integers(16, 64), pixel_arcsec=st.floats(30.0, 600.0))


@st.composite
def estimators(draw, subtract_mean: bool | None = None, deconvolve: bool = True):
    """A SpectrumEstimator on a small patch with bins 2 ℓ_fundamental wide up to the Nyquist ℓ (none
    empty), any taper width and, if ``deconvolve``, a beam of at most 4 pixels FWHM and/or the pixel
    window (wider beams make 1/B_ℓ² overflow at the highest ℓ)."""
    geometry = draw(SPECTRUM_GEOMETRIES)
    binning = Binning.linear(0.0, geometry.ell_nyquist, 2.0 * geometry.ell_fundamental)
    taper = draw(st.one_of(st.none(), st.integers(0, geometry.npix // 4)))
    mean = draw(st.booleans()) if subtract_mean is None else subtract_mean
    beams = st.one_of(st.none(), st.floats(0.1, 4.0 * geometry.pixel_arcsec / 60.0))
    beam = draw(beams) if deconvolve else None
    pixel_window = draw(st.booleans()) if deconvolve else False
    return SpectrumEstimator(geometry, binning, taper, mean, beam, pixel_window)


def random_maps(seed: int, geometry: PatchGeometry, count: int = 2, batch: int = 2) -> list[torch.Tensor]:
    """``count`` independent ``(batch, n, n)`` float64 maps with a random amplitude, offset and a red
    part, so neighbouring pixels are correlated."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        white = rng.standard_normal((batch, *geometry.shape))
        red = np.cumsum(np.cumsum(rng.standard_normal((batch, *geometry.shape)), axis=-1), axis=-2)
        amplitude = 10.0 ** rng.uniform(-1.0, 3.0)
        maps.append(torch.from_numpy(amplitude * (white + 0.1 * red) + rng.uniform(-1e3, 1e3)))
    return maps


def assert_spectra_close(got: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """Equal to ``rel`` of the largest value of ``expected`` (spectra span decades across bins)."""
    assert torch.isfinite(expected).all()
    scale = expected.abs().amax(dim=-1, keepdim=True)
    assert torch.all((got - expected).abs() <= rel * scale), (got, expected)


@fixed(30)
@given(estimator=estimators(), seed=SEEDS,
       factor=st.one_of(st.just(0.0), log_uniform(1e-3, 1e3), log_uniform(1e-3, 1e3).map(lambda a: -a)))
def test_scaling_a_map_scales_its_spectrum_by_the_square(estimator, seed, factor):
    (x,) = random_maps(seed, estimator.geometry, count=1)
    np.testing.assert_allclose(estimator(factor * x).numpy(), factor**2 * estimator(x).numpy(),
                               rtol=1e-10, atol=0)


@fixed(30)
@given(estimator=estimators(), seed=SEEDS)
def test_auto_spectra_are_non_negative_and_equal_self_cross(estimator, seed):
    """auto ≥ 0 (its per-bin scatter too); cross(a, a) = auto(a); cross(a, b) = cross(b, a)."""
    a, b = random_maps(seed, estimator.geometry)
    fa, fb = estimator.fourier(a), estimator.fourier(b)
    auto, std = estimator.binned(fa, return_std=True)
    assert auto.shape == (2, estimator.binning.n_bins) and torch.isfinite(auto).all()
    assert torch.all(auto >= 0.0) and torch.all(std >= 0.0)
    assert_spectra_close(estimator.binned(fa, fa), auto, 1e-12)
    cross = estimator.binned(fa, fb)
    assert_spectra_close(estimator.binned(fb, fa), cross, 1e-12)
    assert torch.equal(estimator(a, b), cross)


@fixed(30)
@given(estimator=estimators(), seed=SEEDS, alpha=st.floats(-10.0, 10.0), beta=st.floats(-10.0, 10.0))
def test_spectra_are_bilinear(estimator, seed, alpha, beta):
    """auto(αa + βb) = α² auto(a) + β² auto(b) + 2αβ cross(a, b), to 1e-10 of the largest term."""
    a, b = random_maps(seed, estimator.geometry)
    fa, fb = estimator.fourier(a), estimator.fourier(b)
    expected = alpha**2 * estimator.binned(fa) + beta**2 * estimator.binned(fb) \
        + 2 * alpha * beta * estimator.binned(fa, fb)
    scale = (alpha**2 * estimator.binned(fa) + beta**2 * estimator.binned(fb)).amax(dim=-1, keepdim=True)
    got = estimator(alpha * a + beta * b)
    assert torch.all((got - expected).abs() <= 1e-10 * scale + 1e-300)


@fixed(30)
@given(estimator=estimators(subtract_mean=True), seed=SEEDS, constant=st.floats(-1e4, 1e4))
def test_mean_subtracted_spectra_ignore_a_constant(estimator, seed, constant):
    """With subtract_mean (the default) the patch mean goes before the taper, so any constant added to
    a map leaves every bin unchanged (to rounding: 2 ε |c| / σ) and a constant map has zero power."""
    (x,) = random_maps(seed, estimator.geometry, count=1)
    assert_spectra_close(estimator(x + constant), estimator(x), 1e-9)
    flat = torch.full(estimator.geometry.shape, constant, dtype=torch.float64)
    assert torch.all(estimator(flat).abs() <= 1e-20 * (1.0 + constant**2))


@fixed(30)
@given(geometry=SPECTRUM_GEOMETRIES, seed=SEEDS, constant=st.floats(-1e4, 1e4).filter(lambda c: abs(c) > 1.0))
def test_without_mean_subtraction_a_constant_only_leaks_through_the_taper(geometry, seed, constant):
    """Without mean subtraction, an untapered patch confines a constant to the ℓ = 0 mode: only the
    first bin changes. The cosine taper spreads it: C(x + c) = C(x) + 2c X(x, 1) + c² C(1), with
    C(1) > 0 in the bin after the first."""
    binning = Binning.linear(0.0, geometry.ell_nyquist, 2.0 * geometry.ell_fundamental)
    (x,) = random_maps(seed, geometry, count=1)
    ones = torch.ones(geometry.shape, dtype=torch.float64)
    plain = SpectrumEstimator(geometry, binning, taper_width=0, subtract_mean=False)
    assert_spectra_close(plain(x + constant)[..., 1:], plain(x)[..., 1:], 1e-9)
    assert torch.all(plain(ones)[1:] <= 1e-25 * plain(ones)[0])
    tapered = SpectrumEstimator(geometry, binning, subtract_mean=False)
    leak = 2 * constant * tapered(x, ones) + constant**2 * tapered(ones)
    assert_spectra_close(tapered(x + constant), tapered(x) + leak, 1e-9)
    assert tapered(ones)[1] > 1e-6 * tapered(ones)[0]
    assert torch.equal(power_spectrum(x + constant, geometry, binning, subtract_mean=False),
                       tapered(x + constant))


@fixed(30)
@given(geometry=SPECTRUM_GEOMETRIES, seed=SEEDS, taper=st.one_of(st.none(), st.integers(0, 8)),
       subtract_mean=st.booleans())
def test_one_bin_over_all_modes_is_the_normalised_variance(geometry, seed, taper, subtract_mean):
    """Parseval: a single bin holding every mode gives Ω_pix · mean((x − m)² w²) / mean(w²), so a white
    field of pixel variance σ² gives σ² Ω_pix."""
    estimator = SpectrumEstimator(geometry, Binning((0.0, 2.0 * geometry.ell_nyquist)), taper, subtract_mean)
    (x,) = random_maps(seed, geometry, count=1)
    w = estimator.taper
    m = x - x.mean(dim=(-2, -1), keepdim=True) if subtract_mean else x
    expected = geometry.pixel_area_sr * ((m * w) ** 2).mean(dim=(-2, -1)) / (w**2).mean()
    np.testing.assert_allclose(estimator(x)[..., 0].numpy(), expected.numpy(), rtol=1e-10)


@fixed(40)
@given(geometry=SPECTRUM_GEOMETRIES, data=st.data(), pixel_window=st.booleans(),
       amplitude=log_uniform(0.1, 1e3))
def test_deconvolution_divides_each_mode_by_its_squared_transfer(geometry, data, pixel_window, amplitude):
    """A single periodic Fourier mode on an untapered patch: its bin in the deconvolved spectrum is the
    raw one divided by (B_ℓ · sinc(k_x) sinc(k_y))², other bins stay empty; deconvolution never
    lowers a bin of any map (B_ℓ ≤ 1, sinc ≤ 1)."""
    n = geometry.npix
    modes = st.tuples(st.integers(0, n // 2), st.integers(0, n // 2)).filter(lambda k: k != (0, 0))
    ky, kx = data.draw(modes)
    fwhm = data.draw(st.one_of(st.none(), st.floats(0.1, 4.0 * geometry.pixel_arcsec / 60.0)))
    # edges at (2k + 1/2) ℓ_fundamental: no mode's ℓ = √(k_x² + k_y²) ℓ_fundamental sits on one
    binning = Binning.linear(0.5 * geometry.ell_fundamental, 1.5 * geometry.ell_nyquist,
                             2.0 * geometry.ell_fundamental)
    raw = SpectrumEstimator(geometry, binning, taper_width=0)
    deconvolved = SpectrumEstimator(geometry, binning, taper_width=0, beam_fwhm_arcmin=fwhm,
                                    pixel_window=pixel_window)
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    wave = torch.from_numpy(amplitude * np.cos(2 * np.pi * (ky * rows + kx * cols) / n))
    ell = 2 * np.pi * math.hypot(ky, kx) / (n * geometry.pixel_rad)
    transfer = 1.0
    if fwhm is not None:
        sigma = math.radians(fwhm / 60.0) / math.sqrt(8.0 * math.log(2.0))
        transfer *= math.exp(-0.5 * ell * (ell + 1.0) * sigma**2)
    if pixel_window:
        transfer *= float(np.sinc(ky / n) * np.sinc(kx / n))
    inside = int(np.searchsorted(np.asarray(binning.edges), ell, side="right")) - 1
    got, plain = deconvolved(wave).numpy(), raw(wave).numpy()
    assert plain[inside] > 0.0
    np.testing.assert_allclose(got[inside], plain[inside] / transfer**2, rtol=1e-9)
    # other bins hold only the FFT's rounding (~1e-17 of the mode), which deconvolution multiplies
    # by up to 1/B_ℓ² of their own bins (beams ≤ 4 pixels: < 1e7)
    assert np.all(np.abs(np.delete(np.nan_to_num(plain), inside)) <= 1e-14 * plain[inside])
    assert np.all(np.abs(np.delete(np.nan_to_num(got), inside)) <= 1e-7 * got[inside])
    (x,) = random_maps(data.draw(SEEDS), geometry, count=1)
    raw_x, deconvolved_x = raw(x), deconvolved(x)
    filled = torch.isfinite(raw_x)
    assert filled.any() and torch.equal(torch.isfinite(deconvolved_x), filled)
    assert torch.all(deconvolved_x[filled] >= raw_x[filled] * (1 - 1e-12))


# ---------------------------------------------------------------------------------------------------
# Normalisation: cenn.data.normalization
# ---------------------------------------------------------------------------------------------------

AMPLITUDES = log_uniform(0.1, 1e4)
OFFSETS = st.floats(-1e4, 1e4)

PARAMETER_STRATEGIES = {
    "minmax": lambda channels: st.fixed_dictionaries({"reference_channel": st.integers(0, channels - 1)}),
    "scale": lambda channels: st.fixed_dictionaries({"scale_uk": log_uniform(0.1, 1e4)}),
}
"""Parameters to draw for each transform; a transform registered later is tested with its defaults."""


@st.composite
def transforms(draw, channels: int):
    name = draw(st.sampled_from(available_normalizations()))
    params = draw(PARAMETER_STRATEGIES.get(name, lambda _: st.just({}))(channels))
    return build_normalization(name, **params)


@st.composite
def patches(draw, dtype=torch.float32):
    """``(inputs (B, C, 8, 8), target (B, 1, 8, 8), C)``: every channel and the target with its own
    amplitude (0.1 to 1e4 µK) and offset (|c| ≤ 1e4 µK)."""
    batch, channels = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    amplitude = draw(st.lists(AMPLITUDES, min_size=channels + 1, max_size=channels + 1))
    offset = draw(st.lists(OFFSETS, min_size=channels + 1, max_size=channels + 1))
    rng = np.random.default_rng(draw(SEEDS))
    maps = rng.standard_normal((batch, channels + 1, 8, 8)) * np.array(amplitude)[:, None, None] \
        + np.array(offset)[:, None, None]
    maps = torch.from_numpy(maps).to(dtype)
    return maps[:, :channels].contiguous(), maps[:, channels:].contiguous(), channels


@fixed(60)
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_every_normalization_round_trips_the_target(data, dtype):
    """denormalize(normalize(target)) = target, keeping the dtype: float32 to 1e-5 relative plus 1e-6 of
    the largest magnitude in play (float32 cannot do better than its ε of it), float64 to 1e-12."""
    inputs, target, channels = data.draw(patches(dtype))
    t = data.draw(transforms(channels))
    stats = t.fit(inputs)
    assert stats.shape[0] == inputs.shape[0] and stats.ndim == 2
    net = t.normalize_target(target, stats)
    back = t.denormalize_target(net, stats)
    assert net.dtype == back.dtype == dtype and back.shape == target.shape
    assert t.normalize_inputs(inputs, stats).dtype == dtype
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (1e-12, 1e-13)
    magnitude = max(target.abs().max().item(), inputs.abs().max().item())
    torch.testing.assert_close(back, target, rtol=rtol, atol=atol * magnitude)


@fixed(30)
@given(data=st.data())
def test_statistics_are_per_patch(data):
    """Every transform maps each patch of a batch as it maps that patch alone, bit for bit."""
    inputs, target, channels = data.draw(patches(torch.float32))
    t = data.draw(transforms(channels))
    stats = t.fit(inputs)
    for i in range(inputs.shape[0]):
        alone = t.fit(inputs[i : i + 1])
        assert torch.equal(alone, stats[i : i + 1])
        one = slice(i, i + 1)
        assert torch.equal(t.normalize_inputs(inputs[one], alone), t.normalize_inputs(inputs, stats)[one])
        assert torch.equal(t.normalize_target(target[one], alone), t.normalize_target(target, stats)[one])


@fixed(40)
@given(data=st.data())
def test_minmax_is_invariant_to_positive_affine_changes_of_each_channel(data):
    """Min-max: inputs span exactly [0, 1] per patch and channel; changing each channel to a·x + c
    (a > 0, per channel) leaves the normalised inputs unchanged, the target is normalised the same
    after the reference channel's change, and denormalising gives a_ref·y + c_ref of the old result;
    a < 0 turns the normalised inputs into 1 − them. Float64, to 1e-9."""
    inputs, target, channels = data.draw(patches(torch.float64))
    t = build_normalization("minmax", **data.draw(PARAMETER_STRATEGIES["minmax"](channels)))
    a = torch.tensor(data.draw(st.lists(log_uniform(1e-2, 1e2), min_size=channels, max_size=channels)),
                     dtype=torch.float64)[:, None, None]
    c = torch.tensor(data.draw(st.lists(OFFSETS, min_size=channels, max_size=channels)),
                     dtype=torch.float64)[:, None, None]
    ref = t.reference_channel
    stats = t.fit(inputs)
    x = t.normalize_inputs(inputs, stats)
    flat = x.flatten(2)
    assert torch.all(flat.amin(dim=2) == 0.0) and torch.all(flat.amax(dim=2) == 1.0)

    moved = a * inputs + c
    moved_stats = t.fit(moved)
    torch.testing.assert_close(t.normalize_inputs(moved, moved_stats), x, rtol=0, atol=1e-9)
    y = t.normalize_target(target, stats)
    moved_y = t.normalize_target(a[ref] * target + c[ref], moved_stats)
    torch.testing.assert_close(moved_y, y, rtol=1e-9, atol=1e-9)
    out = torch.from_numpy(np.random.default_rng(data.draw(SEEDS)).uniform(-0.5, 1.5, target.shape))
    expected = a[ref] * t.denormalize_target(out, stats) + c[ref]
    torch.testing.assert_close(t.denormalize_target(out, moved_stats), expected, rtol=1e-9,
                               atol=1e-9 * expected.abs().max().item())
    flipped = -inputs + c
    torch.testing.assert_close(t.normalize_inputs(flipped, t.fit(flipped)), 1.0 - x, rtol=0, atol=1e-9)


@fixed(30)
@given(data=st.data(), factor=log_uniform(1e-2, 1e2), constant=OFFSETS)
def test_scale_and_identity_are_linear(data, factor, constant):
    """Scale divides by scale_uk whatever the statistics: normalize(a·x + c) = a·normalize(x) + c/s;
    identity gives the maps back unchanged. Neither fits any statistic (stats (B, 0))."""
    inputs, target, channels = data.draw(patches(torch.float64))
    scale = build_normalization("scale", **data.draw(PARAMETER_STRATEGIES["scale"](channels)))
    identity = build_normalization("identity")
    for t in (scale, identity):
        assert t.fit(inputs).shape == (inputs.shape[0], 0)
    stats = scale.fit(inputs)
    s = scale.scale_uk
    magnitude = abs(constant) + factor * inputs.abs().max().item()
    torch.testing.assert_close(scale.normalize_inputs(factor * inputs + constant, stats),
                               factor * scale.normalize_inputs(inputs, stats) + constant / s,
                               rtol=1e-12, atol=1e-12 * magnitude / s)
    torch.testing.assert_close(scale.normalize_target(target, stats), target / s, rtol=1e-15, atol=0)
    empty = identity.fit(inputs)
    assert torch.equal(identity.normalize_inputs(inputs, empty), inputs)
    assert torch.equal(identity.normalize_target(target, empty), target)
    assert torch.equal(identity.denormalize_target(target, empty), target)


@fixed(30)
@given(data=st.data())
def test_params_rebuild_an_equal_transform(data):
    """build_normalization(t.name, **t.params()) == t, also after a trip through JSON (weights cards),
    and an unknown parameter is refused."""
    channels = data.draw(st.integers(1, 4))
    t = data.draw(transforms(channels))
    rebuilt = build_normalization(t.name, **t.params())
    assert rebuilt == t and type(rebuilt) is type(t)
    assert build_normalization(t.name, **json.loads(json.dumps(t.params()))) == t
    with pytest.raises(ValueError, match="no parameter"):
        build_normalization(t.name, **t.params(), not_a_parameter=1)


@fixed(20)
@given(data=st.data(), value=OFFSETS)
def test_minmax_refuses_a_constant_channel(data, value):
    """A constant input channel has no min-max scale: fit raises ValueError instead of dividing by 0."""
    inputs, _, channels = data.draw(patches(torch.float32))
    patch, channel = data.draw(st.integers(0, inputs.shape[0] - 1)), data.draw(st.integers(0, channels - 1))
    inputs[patch, channel] = value
    with pytest.raises(ValueError, match="constant"):
        build_normalization("minmax", reference_channel=0).fit(inputs)


@fixed(20)
@example(scale_uk=0.0)
@example(scale_uk=100.0)
@given(scale_uk=st.one_of(st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]),
                          log_uniform(1e-6, 1e6), log_uniform(1e-6, 1e6).map(lambda s: -s)))
def test_scale_accepts_only_an_invertible_scale(scale_uk):
    """A zero or non-finite scale is refused; every other one (|s| in [1e-6, 1e6], where float64 has
    room for 100 µK / s) is accepted, divides the maps by s and round-trips an ordinary map exactly."""
    if scale_uk == 0.0 or not math.isfinite(scale_uk):
        with pytest.raises(ValueError, match="finite, non-zero"):
            build_normalization("scale", scale_uk=scale_uk)
        return
    t = build_normalization("scale", scale_uk=scale_uk)
    target = torch.linspace(-100.0, 100.0, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    stats = t.fit(target)
    normalized = t.normalize_target(target, stats)
    torch.testing.assert_close(normalized, target / scale_uk, rtol=1e-15, atol=0.0)
    torch.testing.assert_close(t.denormalize_target(normalized, stats), target, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Units: cenn.sky.units
# ---------------------------------------------------------------------------------------------------

def mjysr_per_krj(nu_ghz: float) -> float:
    """Rayleigh-Jeans brightness per kelvin, 2 k ν² / c², in MJy sr⁻¹ K_RJ⁻¹."""
    return 2.0 * units.K_BOLTZMANN * (nu_ghz * 1e9) ** 2 / units.C_LIGHT**2 / units.MJY_SR


@fixed(50)
@given(nu=st.floats(10.0, 1000.0), temperature=st.floats(-1e3, 1e3).filter(lambda t: abs(t) > 1e-9))
def test_kcmb_mjysr_krj_round_trip(nu, temperature):
    """K_CMB → MJy sr⁻¹ (× dB/dT) → K_RJ (÷ 2kν²/c²) → K_CMB (÷ K_RJ per K_CMB) returns the temperature
    to 1e-12: dbdt_mjysr_per_k and krj_per_kcmb agree; float and float64 tensor paths agree."""
    brightness = temperature * units.dbdt_mjysr_per_k(nu)
    rayleigh_jeans = brightness / mjysr_per_krj(nu)
    assert rayleigh_jeans / units.krj_per_kcmb(nu) == pytest.approx(temperature, rel=1e-12)
    tensor_nu = torch.tensor([nu], dtype=torch.float64)
    assert units.dbdt_mjysr_per_k(tensor_nu).item() == pytest.approx(units.dbdt_mjysr_per_k(nu), rel=1e-12)
    assert units.krj_per_kcmb(tensor_nu).item() == pytest.approx(units.krj_per_kcmb(nu), rel=1e-12)


@fixed(30)
@given(nu=st.floats(10.0, 1000.0))
def test_dbdt_is_the_derivative_of_the_planck_function(nu):
    """dbdt_mjysr_per_k(ν) is dB_ν/dT at T_CMB: a central difference of planck_mjysr agrees to 1e-6."""
    h = 1e-4
    slope = (units.planck_mjysr(nu, units.T_CMB + h) - units.planck_mjysr(nu, units.T_CMB - h)) / (2 * h)
    assert slope == pytest.approx(units.dbdt_mjysr_per_k(nu), rel=1e-6)
