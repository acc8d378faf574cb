"""The resolution of full-sky maps against the patches cut from them: a map pixel spread over many
patch pixels gives patches far smoother than the sky a method expects. One check, for the command
line (from the files' headers, before their pixels are read) and the Python entry point
(:func:`cenn.healpix.reproject.full_sky_maps`)."""

from __future__ import annotations

import warnings

import healpy as hp
import numpy as np

from cenn.sky.flat.geometry import PatchGeometry

#: The coarsest map pixel (√Ω) accepted, in patch pixels: beyond it the map, not the beam, sets the
#: patches' resolution (for 90″ patches: Nside 1024, 3.4′ pixels, is accepted; Nside 512, 6.9′, wider
#: than the 5′ beams of 217 and 353 GHz, is not).
MAX_MAP_PIXEL = 2.5
#: Above this many patch pixels per map pixel (Nside 1024 for 90″ patches) a warning says the patches
#: are smoother than the network's training data; Nside 2048 (1.7′) matches 90″ pixels.
SMOOTH_MAP_PIXEL = 1.5


def _pixel_arcsec(nside: int) -> float:
    """The side (√Ω) of a HEALPix pixel at ``nside``, in arcsec."""
    return float(np.degrees(hp.nside2resol(nside)) * 3600.0)


def _coarsest_nside(pixel_arcsec: float) -> int:
    """The lowest Nside whose pixels are at most ``pixel_arcsec`` wide."""
    return next(n for n in (2 ** k for k in range(30)) if _pixel_arcsec(n) <= pixel_arcsec)


def check_map_resolution(nside: int, geometry: PatchGeometry, network: bool) -> None:
    """Refuse maps at ``nside`` whose pixels are more than :data:`MAX_MAP_PIXEL` patch pixels of
    ``geometry`` wide (one map pixel would be interpolated over many patch pixels: patches far
    smoother than the sky the method expects), naming the lowest Nside accepted; warn above
    :data:`SMOOTH_MAP_PIXEL`. ``network``: the method is a trained network (whose pixels are fixed),
    else a classical method (which may take larger patch pixels). The warning is issued from this
    function, so the same maps checked twice (by the command and the entry point) warn once."""
    pixel_arcsec = _pixel_arcsec(nside)
    ratio = pixel_arcsec / geometry.pixel_arcsec
    if ratio <= SMOOTH_MAP_PIXEL:
        return
    accepted = _coarsest_nside(MAX_MAP_PIXEL * geometry.pixel_arcsec)
    matched = _coarsest_nside(SMOOTH_MAP_PIXEL * geometry.pixel_arcsec)
    found = (f"the maps are at Nside {nside}, whose pixels of {pixel_arcsec / 60:.3g}′ span {ratio:.3g} "
             f"patch pixels of {geometry.pixel_arcsec:g}″")
    sky = "the sky the network was trained on" if network else "the sky"
    if ratio <= MAX_MAP_PIXEL:
        warnings.warn(f"{found}: the patches are interpolated between map pixels and smoother than {sky}; "
                      f"maps at Nside {matched} ({_pixel_arcsec(matched) / 60:.2g}′ pixels) match these "
                      "patches", stacklevel=1)
        return
    coarser = ("give maps made at that resolution (healpy.ud_grade cannot add it)" if network else
               f"give such maps, or patch pixels of at least {pixel_arcsec / MAX_MAP_PIXEL:.0f}″ "
               "(--pixel-arcsec, with --npix to keep the patches' size)")
    raise ValueError(f"{found}: one map pixel would be spread over many patch pixels, so the patches would "
                     f"be far smoother than {sky if network else 'a sky'}; cenn accepts map pixels up to "
                     f"{MAX_MAP_PIXEL:g} patch pixels wide, Nside {accepted} or finer here (Nside {matched} "
                     f"matches these patches): {coarser}")
