"""Any sky component read from HEALPix maps instead of simulated: the paper's recipe of cutting
patches out of full-sky simulations (e.g. the CMB from one FFP10 realisation, thermal dust from
FFP10 maps at 143, 217 and 353 GHz), the other components staying procedural.

A component whose configuration table has ``maps`` is built as a :class:`MapComponent` under
that component's name::

    [components.cmb]
    maps = "cmb_0001.fits"                  # one map, the same in K_CMB at every band

    [components.dust]
    maps = { 143 = "dust_143.fits", 217 = "dust_217.fits", 353 = "dust_353.fits" }
    units = "K_CMB"                         # only if the FITS header does not say
    beam_fwhm_arcmin = 0.0                  # the beam already in the maps (default none)

Maps are read with :func:`cenn.io.healpix_maps.read_map` (any Nside, RING or NESTED, K_CMB or
µK_CMB, amplitude checked) and cut at every patch centre on the padded generation grid with
:func:`cenn.sky.flat.cutouts.cut_patches` (gnomonic, bilinear by default). The simulator then
applies each band's beam, or only the part of it the maps do not already carry. The maps keep
their HEALPix pixel window, as the paper's ``gnomview`` cuts did. Each file's SHA-256 is kept
in the parameters, so a store records exactly which maps made it and a changed file is refused.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
import torch

from cenn.checksums import file_sha256
from cenn.io.healpix_maps import HealpixMap, check_bands, read_map
from cenn.io.units import check_unit_label
from cenn.sky.components.base import Component, SkyContext, build_checked
from cenn.sky.flat.cutouts import cut_patches
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument

INTERPOLATIONS = ("bilinear", "nearest")

@dataclass
class MapComponent(Component):
    """A sky component cut from HEALPix maps (µK_CMB after unit conversion, before the beam).

    Parameters:
        component: the component the maps stand for (``cmb``, ``dust``, ...): its name in the store.
        maps: one FITS path (the same map at every band) or a table band name → path (every band
            of the instrument). Relative paths are taken from the working directory (from the
            configuration file's folder when read by :meth:`SimulationConfig.load`).
        units: ``K_CMB`` or ``uK_CMB``; empty to read them from the FITS header.
        field: the FITS column to read.
        ordering: ``RING`` or ``NESTED``; empty to read it from the FITS header.
        beam_fwhm_arcmin: Gaussian beam FWHM already in the maps (arcmin); the simulator applies
            the rest of each band's beam. It must not exceed any band's beam.
        interpolation: ``bilinear`` or ``nearest``.
        sha256: file → SHA-256, filled in when the configuration is resolved and checked when
            the maps are read.
    """

    fourier_native = False
    component: str = ""
    maps: str | dict[str, str] = ""
    units: str = ""
    field: int = 0
    ordering: str = ""
    beam_fwhm_arcmin: float = 0.0
    interpolation: str = "bilinear"
    sha256: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.maps:
            raise ValueError(f"{self.component}: maps is empty; give a FITS path or a table band → path")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"{self.component}: unknown interpolation {self.interpolation!r}; choose "
                             f"one of {', '.join(INTERPOLATIONS)}")
        if self.beam_fwhm_arcmin < 0:
            raise ValueError(f"{self.component}: beam_fwhm_arcmin must be >= 0, got {self.beam_fwhm_arcmin}")
        if isinstance(self.maps, str):
            self.maps = str(Path(self.maps).absolute())
        else:
            self.maps = {str(band): str(Path(path).absolute()) for band, path in self.maps.items()}
        for path in self.paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{self.component}: map {path} not found; check the path in "
                                        f"[components.{self.component}] maps")
            found = file_sha256(Path(path))
            expected = self.sha256.setdefault(path, found)
            if expected != found:
                raise ValueError(f"{self.component}: {path} has changed since this configuration was "
                                 f"resolved (SHA-256 {found[:12]}… instead of {expected[:12]}…); "
                                 "restore the file or start a new dataset")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.component

    @property
    def paths(self) -> list[str]:
        """The map files, in the order of :attr:`maps`."""
        return [self.maps] if isinstance(self.maps, str) else list(self.maps.values())

    def applied_beam_arcmin(self) -> float:
        return self.beam_fwhm_arcmin

    def setup(self, instrument: Instrument, geometry: PatchGeometry, device: torch.device) -> None:
        if isinstance(self.maps, str):
            files, frequencies = [self.maps], [None]
        else:
            missing = set(instrument.band_names) - set(self.maps)
            extra = set(self.maps) - set(instrument.band_names)
            if missing or extra:
                raise ValueError(f"{self.component}: maps are given for bands {sorted(self.maps)} but the "
                                 f"instrument has {instrument.band_names}; give one map per band "
                                 "(or a single path for a map that is the same at every band)")
            files = [self.maps[band] for band in instrument.band_names]
            frequencies = list(instrument.frequencies_ghz)
        loaded = [read_map(path, units=self.units or None, field=self.field, ordering=self.ordering or None)
                  for path in files]
        check_bands(loaded)
        for hmap, frequency in zip(loaded, frequencies, strict=True):
            self._check_units(hmap, frequency)
        self._nside = loaded[0].nside
        self._values = np.stack([m.values for m in loaded]).astype(np.float32)

    def _check_units(self, hmap: HealpixMap, frequency_ghz: float | None) -> None:
        """Refuse a map whose spread contradicts its units (:func:`~cenn.io.units.check_unit_label`):
        the CMB's at any band, a foreground's at the band's frequency (``None``: the same map at
        every band, checked for a 10⁶ error only). The standard deviation of the seen pixels is used,
        as foreground maps may be sparse (point sources)."""
        seen = hmap.values[hmap.values != hp.UNSEEN]
        content = "cmb" if self.component == "cmb" else "foreground"
        where = f"units = '{{units}}' in [components.{self.component}]"
        check_unit_label(float(seen.std()), hmap.units_in, subject=f"{self.component}: {hmap.path}",
                         measured="it varies", plural=False,
                         statistic="standard deviation of its seen pixels",
                         relabel=f"set its TUNIT{self.field + 1} to {{units}}, or {where}",
                         frequency_ghz=frequency_ghz, content=content)

    def sky(self, ctx: SkyContext) -> torch.Tensor:
        """Patches of the maps ``(batch, 1 or n_bands, n, n)`` µK_CMB on the generation grid."""
        lon, lat = ctx.lon_deg.cpu().numpy(), ctx.lat_deg.cpu().numpy()
        cut = cut_patches(self._values, self._nside, lon, lat, ctx.geometry, self.interpolation)
        holed = np.flatnonzero(cut.unseen_count)
        if holed.size:
            k = holed[0]
            raise ValueError(f"{self.component}: the patch centred on (l, b) = ({lon[k]:.2f}°, "
                             f"{lat[k]:.2f}°) touches UNSEEN pixels of {', '.join(self.paths)}; fill the "
                             "maps or restrict the region to where they are observed")
        return self.scale * torch.from_numpy(cut.values).to(ctx.device)

    def parameters(self) -> dict[str, Any]:
        """The parameters without ``component``, which names the table they sit in."""
        params = dataclasses.asdict(self)
        del params["component"]
        return params


def map_component(name: str, params: dict[str, Any]) -> MapComponent:
    """The :class:`MapComponent` standing for component ``name``, refusing unknown parameters."""
    return build_checked(MapComponent, params, f"component {name!r} read from maps", component=name)


def resolve_map_paths(components: dict[str, dict[str, Any]], folder: Path) -> None:
    """Make the relative ``maps`` paths of ``components`` (a configuration's table, changed in
    place) relative to ``folder``, the configuration file's folder."""
    def resolve(path: str) -> str:
        return path if os.path.isabs(path) else str(folder / path)

    for params in components.values():
        maps = params.get("maps") if isinstance(params, dict) else None
        if isinstance(maps, str):
            params["maps"] = resolve(maps)
        elif isinstance(maps, dict):
            params["maps"] = {band: resolve(path) for band, path in maps.items()}
