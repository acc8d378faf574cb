"""``cenn predict --maps``: a full-sky CMB map from full-sky band maps, with the network or any
other separator, written as a HEALPix FITS file (CMB and weight columns, documented header). The
options are declared with ``cenn predict``'s (:mod:`cenn.cli.predict`), which sends the calls with
``--maps`` to :func:`run_full_sky`."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import healpy as hp
import numpy as np

from cenn._version import __version__
from cenn.config import given_options
from cenn.healpix.maps import check_band_order, check_sky_spread
from cenn.healpix.reproject import check_apodisation_width, check_separates_qu, full_sky_maps
from cenn.healpix.resolution import check_map_resolution
from cenn.healpix.tiling import check_overlap
from cenn.io.healpix_maps import (
    HealpixMap,
    check_bands,
    check_polarization_file,
    header_frequency_ghz,
    header_nside,
    read_map,
    read_polarization,
)
from cenn.io.noise_maps import (
    POLARIZATION_NOISE_COLUMNS,
    NoiseSigma,
    check_sigma_matches,
    has_noise_column,
    read_noise_sigma,
)
from cenn.io.units import UNITS
from cenn.model.weights import WeightsCard, fmt_list
from cenn.outputs import check_file_outputs, write_file
from cenn.predict import Predictor
from cenn.predict.units import check_channel_order
from cenn.predict.values import check_finite_output
from cenn.pretrained import resolve_weights, shipped_weights
from cenn.runtime import DEFAULT_PRECISION, check_device
from cenn.separation import InputInfo, Separator
from cenn.separators import NETWORK_METHODS, NetworkSeparator, build_separator
from cenn.sky.flat.geometry import PatchGeometry
from cenn.sky.instrument import Instrument, load_instrument
from cenn.sky.noise import POLARIZATION_NOISE_FACTOR


def card_info(card: WeightsCard) -> InputInfo:
    """What the network expects, from its weights card (bands named by frequency); each band's
    temperature noise σ per pixel (µK_CMB) is its training data's where the card records it (the
    level a network that takes σ gets where no σ map is given: Q/U networks, × √2), else 0."""
    names = tuple(f"{f:g}" for f in card.frequencies_ghz)
    target = card.target_channel
    levels = card.training.get("noise_uk_per_pixel") or [0.0] * len(names)
    return InputInfo(frequencies_ghz=tuple(card.frequencies_ghz), band_names=names,
                     beam_fwhm_arcmin=tuple(card.beams_arcmin), target_band=names[target],
                     target_beam_fwhm_arcmin=card.beams_arcmin[target], pixel_arcsec=card.pixel_arcsec,
                     noise_uk_per_pixel=tuple(float(n) for n in levels))


def instrument_info(instrument: Instrument, geometry: PatchGeometry) -> InputInfo:
    """What a classical method needs, from an instrument preset."""
    return InputInfo(frequencies_ghz=tuple(instrument.frequencies_ghz),
                     band_names=tuple(instrument.band_names),
                     beam_fwhm_arcmin=tuple(b.beam_fwhm_arcmin for b in instrument.bands),
                     target_band=instrument.target_band,
                     target_beam_fwhm_arcmin=instrument.target.beam_fwhm_arcmin,
                     pixel_arcsec=geometry.pixel_arcsec,
                     noise_uk_per_pixel=tuple(instrument.noise_uk_per_pixel(geometry)))


def method_setup(args: argparse.Namespace) -> tuple[Separator, InputInfo, PatchGeometry]:
    """The separator of ``--method`` with its input description and patch geometry: a network method
    (``cenn``, ``cenn-unbiased``) with ``--weights`` (default: its shipped weights), ``--device``,
    ``--precision`` and ``--batch-size``, described by its weights card; a classical method by
    ``--instrument``, ``--npix`` and ``--pixel-arcsec``. With ``--stokes QU`` a network method's
    ``--weights`` are its Q/U weights (``polarization_weights``, default the Q/U counterpart of its
    shipped model: ``polarization``, ``unbiased-polarization``), beside its shipped temperature
    weights, and describe the inputs; a method that does not separate Q and U is refused here, before
    any map is read."""
    stokes = args.stokes or "I"
    if args.method in NETWORK_METHODS:
        shipped = NETWORK_METHODS[args.method]
        polarized = stokes == "QU"
        options = {"weights": resolve_weights(args.weights) if args.weights and not polarized
                   else shipped_weights(shipped)}
        if polarized:
            options["polarization_weights"] = resolve_weights(args.weights or shipped, "QU")
        separator = build_separator(args.method, device=args.device, precision=args.precision,
                                    batch_size=args.batch_size, **options)
        assert isinstance(separator, NetworkSeparator)
    else:
        separator = build_separator(args.method)
    if stokes == "QU":
        check_separates_qu(separator)
    if not isinstance(separator, NetworkSeparator):
        geometry = PatchGeometry(args.npix, args.pixel_arcsec or 90.0)
        return separator, instrument_info(load_instrument(args.instrument), geometry), geometry
    card = network_card(separator, stokes)
    return separator, card_info(card), PatchGeometry(card.npix, card.pixel_arcsec)


def network_card(separator: NetworkSeparator, stokes: str) -> WeightsCard:
    """The card of the weights ``separator`` runs on ``stokes`` maps (``"QU"``: its Q/U weights)."""
    predictor = separator.polarization if stokes == "QU" else separator.predictor
    assert predictor is not None  # refused by check_separates_qu
    return predictor.card


#: Options of patches (``cenn predict INPUT OUTPUT``) that the full sky does not use, and why.
_PATCH_ONLY = {
    "input": "INPUT and OUTPUT name patch files; the full-sky CMB goes to --out",
    "uncertainty": "the full sky's σ is the SIGMA column of --out",
    "noise_sigma": "the full sky takes each band's noise σ from its map file's II_COV (Q/U: QQ_COV, UU_COV)",
    "fill_nonfinite": "on the full sky NaN and UNSEEN pixels are kept out of the patches' weights",
}


def check_patch_options_unused(args: argparse.Namespace) -> None:
    """Refuse, with ``--maps``, the options of patches, which the full sky would ignore."""
    for name, why in _PATCH_ONLY.items():
        if getattr(args, name, None) not in (None, False):
            flag = "INPUT" if name == "input" else f"--{name.replace('_', '-')}"
            raise ValueError(f"{flag} is for patches (cenn predict INPUT OUTPUT), not with --maps: {why}")


def check_method_options(args: argparse.Namespace, separator: Separator) -> None:
    """Refuse options the method of ``--method`` would ignore: the network's weights, device and
    precision for a classical method; the instrument and patch geometry, which a network takes from
    its weights card, for a network method (a ``--npix`` or ``--pixel-arcsec`` equal to the card's
    is accepted)."""
    if not isinstance(separator, NetworkSeparator):
        given = given_options(args, {"weights": None, "precision": DEFAULT_PRECISION, "device": "cpu"})
        if given:
            are, them = ("are", "them") if len(given) > 1 else ("is", "it")
            raise ValueError(f"{', '.join(given)} {are} for the network methods "
                             f"({', '.join(NETWORK_METHODS)}); --method {args.method} does not use {them}: "
                             f"drop {them}")
        return
    card = network_card(separator, args.stokes or "I")
    given = given_options(args, {"instrument": "planck_hfi"})
    if args.npix not in (256, card.npix):
        given.append(f"--npix {args.npix}")
    if args.pixel_arcsec is not None and args.pixel_arcsec != card.pixel_arcsec:
        given.append(f"--pixel-arcsec {args.pixel_arcsec:g}")
    if given:
        raise ValueError(f"{', '.join(given)}: --method {args.method} takes its bands, beams and patches "
                         f"({card.npix} pixels of {card.pixel_arcsec:g}″) from its weights card; these "
                         "options are for the classical methods: drop them")


def write_full_sky(path: Path, cmb: np.ndarray, weight: np.ndarray, header: list[tuple[str, object]],
                   overwrite: bool, sigma: np.ndarray | None = None) -> None:
    """CMB (µK_CMB), weight and, when given, SIGMA (µK_CMB: the standard deviation of the CMB's
    residual) columns, RING, as a FITS binary table; written then renamed. A CMB ``(2, npix)`` is Q
    and U in the COSMO basis: columns ``Q_STOKES`` and ``U_STOKES`` (µK_CMB), with ``POLCCONV =
    'COSMO'`` in the header. A CMB holding NaN or infinite values is refused."""
    check_finite_output(cmb, path)
    if cmb.ndim == 2:
        header = [*header, ("POLCCONV", "COSMO", "Q/U in the (e_theta, e_phi) basis of HEALPix")]
        columns, names, units = [*cmb, weight], ["Q_STOKES", "U_STOKES", "WEIGHT"], [UNITS, UNITS, ""]
    else:
        columns, names, units = [cmb, weight], ["CMB", "WEIGHT"], [UNITS, ""]
    if sigma is not None:
        columns, names, units = [*columns, sigma], [*names, "SIGMA"], [*units, UNITS]
    with write_file(path, keep_suffix=True, overwrite=overwrite) as tmp:
        hp.write_map(tmp, columns, nest=False, column_names=names, column_units=units,
                     dtype=[np.float32] * len(columns), extra_header=header)


def write_mask(path: Path, sigma: np.ndarray, threshold_uk: float, header: list[tuple[str, object]],
               overwrite: bool) -> float:
    """The confidence mask (1 where σ ≤ ``threshold_uk`` µK_CMB, else 0; 0 where no σ) as a HEALPix
    FITS column ``TMASK``, RING, written then renamed; returns the fraction of the sky kept."""
    mask = ((sigma != hp.UNSEEN) & (sigma <= threshold_uk)).astype(np.float32)
    with write_file(path, keep_suffix=True, overwrite=overwrite) as tmp:
        hp.write_map(tmp, mask, nest=False, column_names=["TMASK"], dtype=np.float32,
                     extra_header=[*header, ("MASKABOV", threshold_uk, "kept where SIGMA <= this [uK_CMB]")])
    return float(mask.mean())


def check_outputs(args: argparse.Namespace) -> tuple[Path, Path | None, Path | None]:
    """``--out``, ``--mollweide`` and ``--mask`` as paths (None when not given), refused before any
    work when they name formats not written, are one of ``--maps`` (or ``--weights``) or one another,
    exist (unless ``--overwrite``), or lie in a missing or read-only folder
    (:func:`cenn.outputs.check_file_outputs`)."""
    if not Path(args.out).name.lower().endswith((".fits", ".fits.gz")):
        raise ValueError(f"--out {args.out}: the full-sky CMB is written as a HEALPix FITS table; name it "
                         ".fits or .fits.gz")
    if args.mollweide:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if Path(args.mollweide).suffix.lower().lstrip(".") not in formats:
            raise ValueError(f"--mollweide {args.mollweide}: name the image with one of the extensions "
                             f"{', '.join('.' + f for f in sorted(formats))}")
    if args.mask and not Path(args.mask).name.lower().endswith((".fits", ".fits.gz")):
        raise ValueError(f"--mask {args.mask}: the mask is written as a HEALPix FITS table; name it .fits")
    inputs = [*(("--maps", p) for p in args.maps), ("--weights", args.weights)]
    out, view, mask = check_file_outputs(
        [("--out", args.out), ("--mollweide", args.mollweide), ("--mask", args.mask)], inputs, args.overwrite)
    assert out is not None
    return out, view, mask


def check_options(args: argparse.Namespace) -> None:
    """Refuse impossible ``--nside``, ``--overlap``, ``--apodisation``, ``--batch-size`` before any work."""
    if args.nside is not None and not hp.isnsideok(args.nside, nest=True):
        raise ValueError(f"--nside must be a power of two >= 1 (e.g. 512, 1024, 2048), got {args.nside}")
    check_overlap(args.overlap)
    check_apodisation_width(args.apodisation)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")


def map_frequencies(args: argparse.Namespace, info: InputInfo) -> list[float | None]:
    """The frequencies (GHz) of ``--maps``: ``--frequencies`` if given, else their headers' (``None``
    where a header states none, with a warning naming the frequency each such map is taken at);
    refused when they are not the method's bands in its order."""
    paths = [Path(p) for p in args.maps]
    if args.frequencies is not None:
        if len(args.frequencies) != len(paths):
            raise ValueError(f"--frequencies gives {len(args.frequencies)} frequencies for {len(paths)} "
                             "maps: give one per map")
        found, source = list(args.frequencies), "--frequencies"
    else:
        found, source = [header_frequency_ghz(p) for p in paths], "its header"
    check_band_order(paths, found, list(info.frequencies_ghz), args.method, source)
    unstated = [f"{p.name} as {f:g} GHz"
                for p, f, given in zip(paths, info.frequencies_ghz, found, strict=True) if given is None]
    if unstated:
        warnings.warn(f"{len(unstated)} of the maps state no frequency (no FREQ key): taken in the order "
                      f"given, {', '.join(unstated)} (the {args.method} method takes "
                      f"{fmt_list(list(info.frequencies_ghz))} GHz, in that order); only a clearly wrong "
                      "order shows in their spreads: state them with --frequencies "
                      f"{','.join(f'{f:g}' for f in info.frequencies_ghz)} or FREQ keys", stacklevel=2)
    return found


def read_bands(args: argparse.Namespace, info: InputInfo,
               frequencies: list[float | None]) -> list[HealpixMap]:
    """The maps of ``--maps`` in µK_CMB, checked together (Nside, ordering, coordinate system, units
    by their spread at each band's frequency); refused when their spreads say clearly that they are
    not in the method's order, and, without stated frequencies, warned about when they doubt it
    (:func:`~cenn.predict.units.check_channel_order`)."""
    maps = [read_map(p, units=args.units) for p in args.maps]
    check_bands(maps)
    spreads = [check_sky_spread(m, f) for m, f in zip(maps, info.frequencies_ghz, strict=True)]
    fix = ("give --maps in that order, or state the maps' frequencies as they are (--frequencies, or FREQ "
           "keys in their headers)")
    doubt = check_channel_order(spreads, list(info.frequencies_ghz),
                                "robust standard deviation of the seen pixels", fix)
    if doubt and None in frequencies:
        warnings.warn(doubt, stacklevel=2)
    return maps


def read_polarized_bands(args: argparse.Namespace) -> tuple[list[HealpixMap], np.ndarray]:
    """The Q and U of ``--maps`` (their ``Q_STOKES`` and ``U_STOKES`` columns, COSMO after
    :func:`~cenn.io.healpix_maps.read_polarization`), µK_CMB, checked together as the temperature
    bands are (their spreads are not: a CMB-dominated Q/U map varies by ~1 µK), every file's
    columns and POLCCONV before any pixel is read; returns the Q maps (for their headers) and
    ``(2, C, npix)``."""
    for path in args.maps:  # every header before any pixel
        check_polarization_file(Path(path))
    pairs = [read_polarization(p, units=args.units) for p in args.maps]
    check_bands([q for q, _ in pairs])
    return [q for q, _ in pairs], np.stack([[q.values for q, _ in pairs], [u.values for _, u in pairs]])


def noise_network(separator: Separator, stokes: str) -> Predictor | None:
    """The network that separates ``stokes`` maps (``"I"`` or ``"QU"``) if it takes the noise σ of its
    inputs, else None (a classical method, or weights without a noise input)."""
    if not isinstance(separator, NetworkSeparator):
        return None
    predictor = separator.polarization if stokes == "QU" else separator.predictor
    return predictor if predictor is not None and predictor.takes_noise else None


def patch_pixel_sigma(sigma: NoiseSigma, band_map: HealpixMap, geometry: PatchGeometry) -> np.ndarray:
    """A band's σ (checked against its map, :func:`~cenn.io.noise_maps.check_sigma_matches`) in µK_CMB
    per patch pixel, ``(npix,)``: converted from the HEALPix pixel by the ratio of their areas (white
    noise keeps σ² Ω), pixels with no σ at the band's median."""
    check_sigma_matches(sigma, band_map)
    seen = sigma.values != hp.UNSEEN
    per_patch_pixel = np.sqrt(hp.nside2pixarea(band_map.nside) / geometry.pixel_area_sr)
    return np.where(seen, sigma.values, np.median(sigma.values[seen])) * per_patch_pixel


def read_noise(args: argparse.Namespace, separator: Separator, maps: list[HealpixMap],
               geometry: PatchGeometry) -> np.ndarray | None:
    """Each band's per-pixel noise σ for a network that takes it, ``(C, npix)`` in µK_CMB per patch
    pixel; None for a method that does not. A band's σ comes from its file's ``II_COV`` column, used
    without being asked (:func:`patch_pixel_sigma`); a file without it gets the network's nominal
    level, said in a warning."""
    network = noise_network(separator, "I")
    if network is None:
        return None
    out = np.empty((len(maps), maps[0].values.size))
    for band, (path, hmap, level) in enumerate(zip(args.maps, maps, network.nominal_noise(), strict=True)):
        if has_noise_column(path) == "II_COV":
            out[band] = patch_pixel_sigma(read_noise_sigma(path), hmap, geometry)
        else:
            warnings.warn(f"{path} has no II_COV column: the network gets its nominal noise σ, "
                          f"{level:.3g} µK_CMB per {geometry.pixel_arcsec:g}″ pixel, everywhere in this band",
                          stacklevel=2)
            out[band] = level
    return out


def read_polarization_noise(args: argparse.Namespace, separator: Separator, maps: list[HealpixMap],
                            geometry: PatchGeometry) -> np.ndarray | None:
    """Each band's per-pixel noise σ of Q and of U for a Q/U network that takes it, ``(2, C, npix)``
    (axis 0: Q, U; the layout of the maps) in µK_CMB per patch pixel; None for a method that does not.
    A band's σ comes from its file's ``QQ_COV`` and ``UU_COV`` columns as the temperature's from
    ``II_COV`` (:func:`patch_pixel_sigma`; ``maps`` are the bands' Q maps, whose UNSEEN pixels are
    those of U too); a file with neither gets √2 × the network's nominal temperature level, the level
    it gets without σ maps, said in a warning; a file with only one is refused."""
    network = noise_network(separator, "QU")
    if network is None:
        return None
    out = np.empty((2, len(maps), maps[0].values.size))
    for band, (path, hmap, level) in enumerate(zip(args.maps, maps, network.nominal_noise(), strict=True)):
        found = [has_noise_column(path, stokes) for stokes in POLARIZATION_NOISE_COLUMNS]
        if all(found):
            out[:, band] = [patch_pixel_sigma(read_noise_sigma(path, stokes=stokes), hmap, geometry)
                            for stokes in POLARIZATION_NOISE_COLUMNS]
        elif any(found):
            have = next(column for column in found if column)
            lack = next(column for column in POLARIZATION_NOISE_COLUMNS.values() if column not in found)
            raise ValueError(f"{path} has {have} but no {lack} column: the noise σ of Q and U needs both "
                             "(Planck frequency maps have both); add it, or drop both")
        else:
            warnings.warn(f"{path} has no QQ_COV and UU_COV columns: the network gets its nominal Q/U noise "
                          f"σ, √2 × {level:.3g} = {POLARIZATION_NOISE_FACTOR * level:.3g} µK_CMB per "
                          f"{geometry.pixel_arcsec:g}″ pixel, everywhere in this band", stacklevel=2)
            out[:, band] = POLARIZATION_NOISE_FACTOR * level
    return out


def gives_sigma(separator: Separator) -> bool:
    """Whether ``separator`` states the σ of its residual (a network with a σ output)."""
    return isinstance(separator, NetworkSeparator) and separator.predictor.gives_sigma


def check_mask_options(args: argparse.Namespace, separator: Separator) -> None:
    """Refuse, before any work, ``--mask-above`` without ``--mask`` or the reverse, either with
    ``--stokes QU``, a threshold that is not a positive number, or a method that states no σ (the
    path itself is checked with the other outputs, :func:`check_outputs`)."""
    if args.mask_above is None and args.mask is None:
        return
    if args.stokes == "QU":
        raise ValueError("--mask and --mask-above keep pixels by the σ of a temperature CMB; drop them with "
                         "--stokes QU")
    if args.mask_above is None or args.mask is None:
        raise ValueError("--mask-above UK and --mask FILE.fits go together: the mask keeps the pixels whose "
                         "σ is at most UK µK_CMB and is written to FILE")
    if not (np.isfinite(args.mask_above) and args.mask_above > 0):
        raise ValueError(f"--mask-above must be a positive number of µK_CMB, got {args.mask_above}")
    if not gives_sigma(separator):
        raise ValueError(f"--mask-above needs a method that states the σ of its CMB; {args.method} "
                         f"({args.weights or 'these weights'}) does not: use the shipped reference model")


def run_full_sky(args: argparse.Namespace) -> int:
    """Run ``cenn predict --maps ... --out FILE``: every check that can be made before the patches
    are separated is made first."""
    if not args.out:
        raise ValueError("--maps needs --out FILE.fits for the full-sky CMB map")
    check_device(args.device, "--device")
    check_patch_options_unused(args)
    out, view, mask = check_outputs(args)
    check_options(args)
    separator, info, geometry = method_setup(args)
    check_method_options(args, separator)
    check_mask_options(args, separator)
    if len(args.maps) != len(info.band_names):
        raise ValueError(f"{len(args.maps)} maps given but the {args.method} method takes "
                         f"{len(info.band_names)}, one per band {list(info.band_names)} GHz, in that order")
    frequencies = map_frequencies(args, info)
    check_map_resolution(min(header_nside(Path(p)) for p in args.maps), geometry,
                         isinstance(separator, NetworkSeparator))  # from the headers, before the pixels
    stokes = args.stokes or "I"
    if stokes == "QU":
        maps, values = read_polarized_bands(args)
    else:
        maps = read_bands(args, info, frequencies)
        values = np.stack([m.values for m in maps])
    nside_in = maps[0].nside
    nside_out = args.nside or nside_in
    with_sigma = gives_sigma(separator) and stokes == "I"
    result = full_sky_maps(values, nside_in, separator, info, geometry, nside_out, overlap=args.overlap,
                           apodisation_width=args.apodisation, batch_size=args.batch_size,
                           interpolation=args.interpolation, progress=not args.no_progress,
                           reprojection=args.reprojection, with_sigma=with_sigma, stokes=stokes,
                           noise_sigma=(read_noise if stokes == "I" else read_polarization_noise)(
                               args, separator, maps, geometry))
    cmb, weight = result.cmb, result.weight
    header = [("METHOD", args.method), ("CENNVER", __version__),
              ("BEAMFWHM", info.target_beam_fwhm_arcmin, "target beam FWHM [arcmin]"),
              ("FREQ", float(info.frequencies_ghz[info.target_channel]), "target band [GHz]"),
              ("PATCHPIX", geometry.npix), ("PIXSIZE", geometry.pixel_arcsec, "patch pixel [arcsec]"),
              ("OVERLAP", args.overlap), ("APODISE", args.apodisation),
              ("CUTINTP", args.interpolation, "patch cut interpolation"),
              ("REPROJ", args.reprojection, "back-projection interpolation"),
              *((f"INMAP{i + 1}", Path(p).name[:68]) for i, p in enumerate(args.maps))]
    if maps[0].coordsys is not None:  # one system for every band (check_bands)
        header.append(("COORDSYS", maps[0].coordsys, "coordinate system of the input maps"))
    if isinstance(separator, NetworkSeparator):
        weights = separator.polarization_weights if stokes == "QU" else separator.weights
        header += [("WEIGHTS", Path(str(weights)).name[:68]),
                   ("PRECISN", separator.predictor.precision, "32: float32; bf16: bfloat16 autocast")]
    write_full_sky(out, cmb, weight, header, args.overwrite, sigma=result.sigma)
    if mask is not None:
        kept = write_mask(mask, result.sigma, args.mask_above, header, args.overwrite)
        print(f"{mask}: confidence mask, σ ≤ {args.mask_above:g} µK_CMB on {100 * kept:.2f} % of the sky")
    covered = float(np.mean(weight > 0))
    what = "CMB Q and U (COSMO)" if stokes == "QU" else "CMB"
    print(f"{out}: {what} at Nside {nside_out} ({info.target_band} GHz beam, µK_CMB) from {len(maps)} maps "
          f"at Nside {nside_in}; {100 * covered:.2f} % of the sky covered")
    if view:
        polarized = np.hypot(*cmb) if stokes == "QU" else cmb
        name = "CMB polarized intensity" if stokes == "QU" else "CMB"
        write_mollweide(view, np.where(weight > 0, polarized, hp.UNSEEN),
                        f"{args.method} {name} ({info.target_band} GHz beam)")
    return 0


def write_mollweide(path: Path, cmb: np.ndarray, title: str) -> Path:
    """A Mollweide view of ``cmb`` (µK), in the image format of ``path``'s extension (PNG, PDF, ...),
    written then renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = cmb[cmb != hp.UNSEEN]
    limit = float(np.percentile(np.abs(seen), 99.5)) if seen.size else 1.0
    with warnings.catch_warnings():  # healpy's colormap calls, deprecated in matplotlib
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        hp.mollview(cmb, title=title, unit=r"$\mu$K$_{\rm CMB}$", min=-limit, max=limit, cmap="RdBu_r")
    with write_file(path, keep_suffix=True) as tmp:
        plt.savefig(tmp, dpi=120, format=path.suffix.lower().lstrip("."))
    plt.close("all")
    return path
