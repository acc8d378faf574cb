"""Full-sky HEALPix maps: reading and checking them, cutting patches out, tiling the sphere and
putting predictions back (the modules' docstrings state the conventions)."""

from cenn.healpix.maps import HealpixMap, check_bands, read_map, uk_per_unit
from cenn.healpix.projection import (
    PROJECTIONS,
    PatchCut,
    cut_patches,
    forward_gnomonic,
    interpolation_weights,
    patch_position,
    patch_vectors,
    pixel_directions,
)
from cenn.healpix.reproject import (
    REPROJECTIONS,
    FullSkyAccumulator,
    apodisation,
    fill_invalid,
    footprint,
    interpolate_patch,
    predict_full_sky,
    round_trip_transfer,
    taper,
)
from cenn.healpix.tiling import tile_centres

__all__ = [
    "PROJECTIONS",
    "REPROJECTIONS",
    "FullSkyAccumulator",
    "HealpixMap",
    "PatchCut",
    "apodisation",
    "check_bands",
    "cut_patches",
    "fill_invalid",
    "footprint",
    "forward_gnomonic",
    "interpolate_patch",
    "interpolation_weights",
    "patch_position",
    "patch_vectors",
    "pixel_directions",
    "predict_full_sky",
    "read_map",
    "round_trip_transfer",
    "taper",
    "tile_centres",
    "uk_per_unit",
]
