"""Full-sky HEALPix maps: reading and checking them, cutting patches out, tiling the sphere and
putting predictions back (the modules' docstrings state the conventions). Reading the maps
(:mod:`cenn.io.healpix_maps`), the projections (:mod:`cenn.sky.flat.projection`) and cutting patches out
(:mod:`cenn.sky.flat.cutouts`) live in the layers below, as the simulator uses them too; they are
re-exported here."""

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
from cenn.io.healpix_maps import HealpixMap, check_bands, read_map
from cenn.io.units import uk_per_unit
from cenn.sky.flat.cutouts import PatchCut, cut_patches, interpolation_weights
from cenn.sky.flat.projection import (
    PROJECTIONS,
    forward_gnomonic,
    patch_position,
    patch_vectors,
    pixel_directions,
)

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
