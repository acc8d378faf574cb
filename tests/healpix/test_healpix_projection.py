import math

import healpy as hp
import numpy as np
import pytest
import torch

from cenn.healpix import cut_patches, forward_gnomonic, patch_position, pixel_directions
from cenn.sky.flat.projection import pixel_coordinates, unit_vectors

NSIDE = 256
CENTRES_LON = np.array([37.0, 210.0, 300.0, 5.0, 123.0])
CENTRES_LAT = np.array([0.0, 30.0, -45.0, 75.0, 90.0])


def smooth_field(lon_deg, lat_deg):
    """F(x, y, z) = z + x·y on the sphere: |∇F| ≤ √2 and, along any great circle, |F''| ≤ 1 + √2."""
    v = unit_vectors(lon_deg, lat_deg)
    return v[..., 2] + v[..., 0] * v[..., 1]


@pytest.fixture(scope="module")
def field_map():
    theta, phi = hp.pix2ang(NSIDE, np.arange(hp.nside2npix(NSIDE)))
    return smooth_field(np.degrees(phi), 90.0 - np.degrees(theta))


def test_gnomonic_directions_are_those_of_the_simulator(geometry_for):
    geometry = geometry_for(64, 32)
    lon, lat = pixel_directions(CENTRES_LON, CENTRES_LAT, geometry)
    ref_lon, ref_lat = (t.numpy() for t in pixel_coordinates(
        torch.from_numpy(CENTRES_LON), torch.from_numpy(CENTRES_LAT), geometry))
    dlon = (lon - ref_lon + 180.0) % 360.0 - 180.0
    tolerance_deg = 1e-9 * geometry.pixel_deg
    assert np.abs(dlon * np.cos(np.radians(lat))).max() < tolerance_deg
    assert np.abs(lat - ref_lat).max() < tolerance_deg


@pytest.mark.parametrize("projection", ["gnomonic", "cartesian"])
def test_forward_projection_inverts_the_directions(geometry_for, projection):
    geometry = geometry_for(64, 32)
    lon, lat = pixel_directions(CENTRES_LON, CENTRES_LAT, geometry, projection)
    rows, cols = np.indices(geometry.shape)
    for k in range(len(CENTRES_LON)):
        row, col = patch_position(lon[k], lat[k], CENTRES_LON[k], CENTRES_LAT[k], geometry, projection)
        assert np.abs(row - rows).max() < 1e-9 and np.abs(col - cols).max() < 1e-9


def test_forward_gnomonic_has_no_image_behind_the_centre(geometry_for):
    geometry = geometry_for(64, 32)
    row, col = forward_gnomonic(np.array([190.0, 10.0]), np.array([0.0, 0.0]), 10.0, 0.0, geometry)
    assert np.isnan(row[0]) and np.isnan(col[0])
    assert row[1] == pytest.approx(15.5) and col[1] == pytest.approx(15.5)


def test_cartesian_patch_on_the_equator_is_a_plate_carree(geometry_for):
    geometry = geometry_for(64, 32)
    lon, lat = pixel_directions(np.array([100.0]), np.array([0.0]), geometry, "cartesian")
    offsets_deg = np.degrees(geometry.offsets_rad().numpy())
    np.testing.assert_allclose(lat[0], np.broadcast_to(offsets_deg[:, None], geometry.shape), atol=1e-12)
    np.testing.assert_allclose(lon[0], np.broadcast_to(100.0 - offsets_deg[None, :], geometry.shape),
                               atol=1e-12)


def test_unknown_projection_refused(geometry_for):
    with pytest.raises(ValueError, match="unknown projection 'mollweide'; choose one of gnomonic, cartesian"):
        pixel_directions(np.array([0.0]), np.array([0.0]), geometry_for(64, 32), "mollweide")


@pytest.mark.parametrize("projection", ["gnomonic", "cartesian"])
def test_patches_of_a_smooth_field_match_it_within_the_interpolation_error(field_map, geometry_for,
                                                                           projection):
    """Nearest: the nearest pixel centre is within r = max_pixrad, so |error| ≤ max|∇F| r = √2 r.
    Bilinear: the interpolating pixels lie within 2r and the weights reproduce linear functions of
    the ring coordinates, so |error| ≤ ½ max|F''| (2r)² = 2 (1 + √2) r²; both hold at the pole too."""
    geometry = geometry_for(NSIDE, 64)
    r = hp.max_pixrad(NSIDE)
    exact = smooth_field(*pixel_directions(CENTRES_LON, CENTRES_LAT, geometry, projection))
    bilinear = cut_patches(field_map, NSIDE, CENTRES_LON, CENTRES_LAT, geometry, "bilinear", projection)
    nearest = cut_patches(field_map, NSIDE, CENTRES_LON, CENTRES_LAT, geometry, "nearest", projection)
    assert bilinear.values.shape == (5, 64, 64) and bilinear.values.dtype == np.float32
    bilinear_error = np.abs(bilinear.values - exact).max()
    nearest_error = np.abs(nearest.values - exact).max()
    assert bilinear_error < 2 * (1 + math.sqrt(2)) * r**2
    assert nearest_error < math.sqrt(2) * r
    assert nearest_error > 10 * bilinear_error  # the two interpolations really differ
    assert not bilinear.unseen.any() and not nearest.unseen_count.any()


def test_bright_spot_north_east_of_the_centre_lands_up_and_left(geometry_for):
    """North is increasing rows; east (increasing longitude) is decreasing columns."""
    nside, geometry = 128, geometry_for(128, 32)
    lon0, lat0, spot_lon, spot_lat = 40.0, 20.0, 42.0, 23.0
    theta, phi = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    distance = np.arccos(np.clip(unit_vectors(np.degrees(phi), 90.0 - np.degrees(theta))
                                 @ unit_vectors(spot_lon, spot_lat), -1.0, 1.0))
    spot = np.exp(-0.5 * (distance / math.radians(1.0)) ** 2)
    patch = cut_patches(spot, nside, np.array([lon0]), np.array([lat0]), geometry).values[0]
    row, col = np.unravel_index(np.argmax(patch), patch.shape)
    centre = (geometry.npix - 1) / 2
    assert row > centre + 3 and col < centre - 2
    expected_row, expected_col = forward_gnomonic(spot_lon, spot_lat, lon0, lat0, geometry)
    assert abs(row - expected_row) <= 1 and abs(col - expected_col) <= 1


def test_stacked_bands_and_unseen_pixels(field_map, geometry_for):
    geometry = geometry_for(NSIDE, 32)
    holed = 2 * field_map
    holed[hp.query_disc(NSIDE, unit_vectors(37.0, 0.0), math.radians(1.0))] = hp.UNSEEN
    maps = np.stack([field_map, holed])
    cut = cut_patches(maps, NSIDE, CENTRES_LON[:2], CENTRES_LAT[:2], geometry, "nearest")
    assert cut.values.shape == (2, 2, 32, 32) and cut.unseen.shape == (2, 32, 32)
    clean = cut_patches(field_map, NSIDE, CENTRES_LON[:2], CENTRES_LAT[:2], geometry, "nearest").values
    np.testing.assert_array_equal(cut.values[:, 0][~cut.unseen], clean[~cut.unseen])
    np.testing.assert_array_equal(cut.values[:, 1][~cut.unseen], 2 * clean[~cut.unseen])
    assert np.isnan(cut.values[:, 1][cut.unseen]).all()
    # a 1°-radius hole covers about π (1°/pixel)² patch pixels of the first patch, none of the second
    assert cut.unseen_count[0] == pytest.approx(math.pi / geometry.pixel_deg**2, rel=0.15)
    assert cut.unseen_count[1] == 0


def test_bilinear_flags_every_pixel_near_unseen(field_map, geometry_for):
    geometry = geometry_for(NSIDE, 32)
    holed = field_map.copy()
    holed[hp.query_disc(NSIDE, unit_vectors(37.0, 0.0), math.radians(1.0))] = hp.UNSEEN
    args = (NSIDE, CENTRES_LON[:1], CENTRES_LAT[:1], geometry)
    near, bilinear = cut_patches(holed, *args, "nearest"), cut_patches(holed, *args, "bilinear")
    assert (bilinear.unseen >= near.unseen).all() and bilinear.unseen_count[0] > near.unseen_count[0]
    assert np.abs(bilinear.values[~bilinear.unseen]).max() < 2.0  # |F| ≤ 1.5: no UNSEEN leaked in


def test_maps_must_match_nside(field_map, geometry_for):
    with pytest.raises(ValueError, match="do not match Nside 128"):
        cut_patches(field_map, 128, CENTRES_LON, CENTRES_LAT, geometry_for(NSIDE, 32))
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        cut_patches(field_map, NSIDE, CENTRES_LON, CENTRES_LAT, geometry_for(NSIDE, 32), "cubic")
