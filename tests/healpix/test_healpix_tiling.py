import healpy as hp
import numpy as np
import pytest

from cenn.healpix import footprint, taper, tile_centres
from cenn.sky.flat.geometry import PatchGeometry

NSIDE = 64
GEOMETRY = PatchGeometry(32, 900.0)  # 8° patches of 15′ pixels over 55′ HEALPix pixels


@pytest.mark.parametrize("projection", ["gnomonic", "cartesian"])
@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_interiors_cover_the_whole_sphere(projection, overlap):
    """Every pixel centre lies where some patch's apodisation (over overlap/2 of the side) is 1."""
    lon, lat = tile_centres(GEOMETRY, overlap, projection)
    interior = np.zeros(hp.nside2npix(NSIDE), dtype=bool)
    for lon0, lat0 in zip(lon, lat, strict=True):
        pixels, row, col = footprint(NSIDE, lon0, lat0, GEOMETRY, projection)
        interior[pixels[taper(row, col, GEOMETRY.npix, overlap / 2) == 1.0]] = True
    assert interior.all()


def test_rings_pole_to_pole_with_the_requested_spacing():
    overlap = 0.25
    lon, lat = tile_centres(GEOMETRY, overlap)
    rings = np.unique(lat)
    assert rings[0] == -90.0 and rings[-1] == 90.0
    assert np.sum(lat == 90.0) == 1 and np.sum(lat == -90.0) == 1
    cell_deg = GEOMETRY.side_deg * (1 - overlap)
    assert np.diff(rings).max() <= cell_deg
    equator = np.sort(lon[np.isclose(lat, rings[np.abs(rings).argmin()])])
    assert np.diff(np.append(equator, equator[0] + 360.0)).max() <= cell_deg
    # no waste: within 30 % of the sphere's area over one cell's
    assert len(lon) < 1.3 * 4 * np.pi * np.degrees(1) ** 2 / cell_deg**2


def test_more_overlap_needs_more_patches():
    counts = [len(tile_centres(GEOMETRY, overlap)[0]) for overlap in (0.0, 0.25, 0.5)]
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] / counts[0] == pytest.approx(4.0, rel=0.2)  # cells of half the side


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_bad_overlap_refused(overlap):
    with pytest.raises(ValueError, match="overlap must lie in"):
        tile_centres(GEOMETRY, overlap)
