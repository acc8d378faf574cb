"""Full-sky HEALPix maps: reading and checking them, cutting patches out, tiling the sphere and
putting predictions back (the modules' docstrings state the conventions)."""

from cenn.healpix.maps import HealpixMap, check_bands, read_map, uk_per_unit
from cenn.healpix.projection import (
    PROJECTIONS,
    PatchCut,
    cut_patches,
    forward_gnomonic,
    patch_position,
    pixel_directions,
)
from cenn.healpix.reproject import (
    FullSkyAccumulator,
    apodisation,
    footprint,
    predict_full_sky,
    taper,
)
from cenn.healpix.tiling import tile_centres

__all__ = [
    "PROJECTIONS",
    "FullSkyAccumulator",
    "HealpixMap",
    "PatchCut",
    "apodisation",
    "check_bands",
    "cut_patches",
    "footprint",
    "forward_gnomonic",
    "patch_position",
    "pixel_directions",
    "predict_full_sky",
    "read_map",
    "taper",
    "tile_centres",
    "uk_per_unit",
]
