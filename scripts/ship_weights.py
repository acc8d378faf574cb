"""Ship a training run's weights as the package's reference model, with its model card.

    python scripts/ship_weights.py REPORT_DIR --run RUN_DIR --hardware "2-core AMD EPYC (CPU)" \
        --minutes 86 [--preview]
    python scripts/ship_weights.py REPORT_DIR        # the shipped model, evaluated anew
    python scripts/ship_weights.py REPORT_DIR --model unbiased --run RUN_DIR ...   # the unbiased model
    python scripts/ship_weights.py REPORT_DIR --model polarization --run RUN_DIR ...   # the Q/U model
    python scripts/ship_weights.py REPORT_DIR --model unbiased-polarization --run RUN_DIR ...


Copies ``RUN_DIR/weights.safetensors`` to ``src/cenn/pretrained/`` under the shipped model's name
(``--model``: ``reference``, the default, ``unbiased``, ``polarization`` or ``unbiased-polarization``;
:data:`cenn.pretrained.SHIPPED`) and writes its card (:data:`CARDS`; a Q/U model's evaluation is the
report's polarization section, for the method that runs it, :data:`METHODS`) from the run's
configuration, its validation metrics, the runs it continued (``--init-weights``, followed back to
the first) and the evaluation report's summary (``REPORT_DIR/metrics.json``, from cenn evaluate).
``--minutes`` is the wall time of all those runs together. Without ``--run`` only the card's
evaluation section is rewritten from ``REPORT_DIR`` (an evaluation of the shipped weights, e.g.
after a classical method changed); what it says of the model and its training is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

from cenn.evaluate.calibration import calibrated
from cenn.evaluate.cross_sky import cross_sky_table
from cenn.evaluate.polarization_report import polarization_table
from cenn.evaluate.report import format_table, headline_table, summary_table
from cenn.evaluate.summary import HEADLINE_ELL_RANGE, headline_figures
from cenn.model import load_weights, save_weights
from cenn.model.weights import WeightsCard
from cenn.pretrained import CHECKSUMS, SHIPPED, shipped_checksums

#: What each architecture is, for the card.
ARCHITECTURES = {
    "cenn-paper": "the paper's CENN: 6 stride-2 convolutions and 6 transposed convolutions with skip "
                  "connections",
    "unet": "a residual U-Net (GroupNorm, SiLU, bilinear upsampling, a full-resolution skip, linear output; "
            "with noise_input it also takes each band's per-pixel noise σ, with sigma_output it also gives "
            "the σ of its residual)",
    "hilc-unet": "ILC-informed: a harmonic ILC (per-patch weights in bins of equal mode count) plus a "
                 "correction from a residual U-Net that sees the ILC map and the beam-matched CMB-free band "
                 "differences, asinh-compressed on one µK scale; output = ILC + correction",
    "sp-unet": "signal-preserving: the 217 GHz map minus foregrounds predicted by a residual U-Net from "
               "the CMB-free band differences alone (the CMB passes with unit response)",
    "sp-nilc-unet": "unbiased: the 217 GHz map minus the CMB-free needlet ILC's foregrounds (compact radio "
                    "sources fitted first with their own SED, when the card holds source_seds) minus a "
                    "correction a residual U-Net computes from the CMB-free band differences and the noise σ "
                    "(the CMB passes with exactly unit response); it also gives the σ of its residual",
}
#: Each shipped model's card, beside its weights.
CARDS = {"reference": "MODEL_CARD.md", "unbiased": "MODEL_CARD-unbiased.md",
         "polarization": "MODEL_CARD-polarization.md",
         "unbiased-polarization": "MODEL_CARD-unbiased-polarization.md"}
#: The ``cenn evaluate`` method that runs each shipped model.
METHODS = {"reference": "cenn", "polarization": "cenn", "unbiased": "cenn-unbiased",
           "unbiased-polarization": "cenn-unbiased"}
#: Methods that are not a classical separation (left out of "the best classical method").
NOT_CLASSICAL = ("cenn", "cenn-unbiased", "target-band")

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "cenn" / "pretrained"
MAX_BYTES = 25_000_000
#: The heading that opens the card's evaluation section.
EVALUATION = "## Evaluation\n"


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _samples(card: WeightsCard) -> int:
    """Training samples of one run."""
    return card.training["global_step"] * card.training["config"]["trainer"]["batch_size"]


def card_stages(text: str) -> tuple[list[str], int]:
    """The training stage lines and the samples in all that the model card ``text`` lists."""
    training = text[text.index("## Training"):text.index(EVALUATION)]
    stages = [line for line in training.splitlines() if line.startswith("  - ")]
    found = re.search(r"In all: ([\d,]+) samples", training)
    if not stages or found is None:
        raise ValueError("the model card lists no training stages and samples to continue from")
    return stages, int(found[1].replace(",", ""))


def training_stages(card: WeightsCard, model: str = "reference") -> tuple[list[str], int]:
    """One line per training run that led to ``card`` (``model.init_weights`` links, followed back
    to the first run), first run first, and their samples in all. A run that started from the
    shipped ``model`` (a file with its SHA-256) takes that model's stages from its card, and a run
    already listed there (the uncalibrated weights of the shipped run) is not listed again."""
    chain, earlier, samples = [card], [], 0
    shipped = shipped_checksums().get(SHIPPED[model])
    while (start := chain[0].training["config"]["model"].get("init_weights")):
        if hashlib.sha256(Path(start).read_bytes()).hexdigest() == shipped:
            earlier, samples = card_stages((PRETRAINED / CARDS[model]).read_text())
            break
        chain.insert(0, load_weights(start)[1])
    listed = [c for c in chain if _stage(c) in earlier]
    chain = [c for c in chain if c not in listed]
    return earlier + [_stage(c) for c in chain], samples + sum(_samples(c) for c in chain)


def _in_repository(path: str) -> str:
    """``path`` from the repository's top folders on (``benchmarks/…``, ``src/…``), so the card names
    no machine's folders."""
    parts = Path(path).parts
    for top in ("benchmarks", "src", "scripts"):
        if top in parts:
            return "/".join(parts[parts.index(top):])
    return Path(path).name


def _portable_value(value):
    """``value`` with every absolute path in it (strings, lists, tables) made repository-relative."""
    if isinstance(value, dict):
        return {k: _portable_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable_value(v) for v in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return _in_repository(value)
    return value


def portable(card: WeightsCard) -> WeightsCard:
    """``card`` whose training record names no folder of the machine that trained it (paths from the
    repository's top folders on, or bare file names)."""
    return dataclasses.replace(card, training=_portable_value(card.training))


def _stage(card: WeightsCard) -> str:
    """One line per training run: data, optimiser, length."""
    t, c = card.training, card.training["config"]
    samples = _samples(card)
    train, val, o = t["train"], t["val"], c["optim"]
    if train.get("stream"):
        simulation = c["data"].get("simulation")
        source = _in_repository(simulation) if simulation else "the validation store's simulation"
        data = f"{samples:,} streamed patches (seed {train['seed']}, {source})"
    else:
        data = (f"{samples:,} samples from a store of {train.get('n_patches')} patches "
                f"(seed {train.get('seed')})")
    loss = c.get("loss", {}).get("name", "mse")
    return (f"  - {data}; {o['name']} at learning rate {o['lr']} ({o.get('schedule', 'constant')} "
            f"schedule), L2 {o['l2']}, loss {loss}, batch {c['trainer']['batch_size']}, "
            f"{t['epochs']} epochs; validation on {val.get('n_patches')} patches (seed {val.get('seed')})")


def evaluation_section(metrics: dict, method: str = "cenn") -> str:
    """The card's evaluation section (to its end) from a report's ``metrics.json``, read for the
    model that ``method`` runs."""
    header, rows = summary_table(metrics)
    headline = headline_table({name: {d: headline_figures(r) for d, r in per.items()}
                               for name, per in metrics["results"].items()})
    lo, hi = HEADLINE_ELL_RANGE
    sets = "; ".join(f"{d}: {i['n_patches']} patches, seed {i['seed']}"
                     for d, i in metrics["datasets"].items())
    return f"""## Evaluation

`cenn evaluate` against the classical methods on validation sets simulated with other seeds than
training ({sets}); the paper's values (6,000 / 2,000 patches) in the `paper` rows. Patch RMS: the mean over
patches of the residual RMS; Table 1 RMS: RMS of the mean residual patch; ΔD_ℓ and residual D_ℓ
averaged over all ℓ (µK²).

```
{format_table(header, rows)}
```

The same evaluation with the residual D_ℓ and ΔD_ℓ = D_ℓ(CMB) − D_ℓ(output) averaged over
{lo:g} ≤ ℓ < {hi:g} (µK²) and the transfer function t_ℓ = ⟨C_ℓ(out × CMB)⟩ / ⟨C_ℓ(CMB)⟩ on the all-sky set:

{headline}

{_reading(metrics, method)}
{_cross_sky_section(metrics)}{_calibration_section(metrics)}"""


#: Multipoles over which the unbiased model's response to an injected CMB is stated (issue 24).
RESPONSE_ELL_RANGE = (30.0, 2500.0)


def _reading(metrics: dict, method: str) -> str:
    """How to read the headline table for the model ``method`` runs: the minimum-MSE map's transfer,
    or the unbiased map's response to an injected CMB (its largest departure from 1 over
    :data:`RESPONSE_ELL_RANGE`, every set)."""
    unbiased = metrics["results"].get("cenn-unbiased")
    if method != "cenn-unbiased" or unbiased is None:
        return """Reading it: where t_ℓ is below 1 the network suppresses the CMB together with what it cannot
tell from it (noise at high ℓ), as the Wiener filter does: it minimises the residual, it is not unbiased.
For power spectra divide by t_ℓ, or use the unbiased model (`--weights unbiased`, MODEL_CARD-unbiased.md)."""
    lo, hi = RESPONSE_ELL_RANGE
    worst = 0.0
    for result in unbiased.values():
        ell = np.asarray(result["per_bin"]["ell"], dtype=float)
        response = np.asarray(result["per_bin"]["response_transfer"], dtype=float)
        worst = max(worst, float(np.abs(response[(ell >= lo) & (ell < hi)] - 1.0).max()))
    return f"""Reading it: t_ℓ here is the cross-spectrum with the stored CMB, which carries the residual's
chance correlation with it; the response to an injected CMB has no such term, and it is 1 within {worst:.1e}
in every bin {lo:g} ≤ ℓ < {hi:g} of every set: the map is unbiased, for power spectra, lensing and
cross-correlation. Its residual is larger than the minimum-MSE reference model's (MODEL_CARD.md), the
map for visualisation, inpainting and source work."""


def _cross_sky_section(metrics: dict) -> str:
    """The cross-model test's table, when the report has one."""
    if not metrics.get("cross_sky"):
        return ""
    header, rows = cross_sky_table(metrics["cross_sky"])
    return f"""
### On a sky it was not trained for

The same methods on the alternative sky (`src/cenn/configs/sky-alternative.toml`, datasets alt-*), the
ratio alternative / default, and that ratio over NILC's with its 68 % bootstrap interval over patches
where the report has one (paired: the alternative store has its default store's seed, so the two hold
the same patches and only the sky model differs):

```
{format_table(header, rows)}
```
"""


def _calibration_section(metrics: dict) -> str:
    """Coverage of the stated σ, when a method states one."""
    entries = calibrated(metrics["results"])
    if not entries:
        return ""
    rows = [[m, d, f"{c['coverage']['1sigma']:.3f}", f"{c['coverage']['2sigma']:.3f}",
             f"{c['reliability']['max_deviation']:.3f}", f"{c['mask']['kept_fraction']:.3f}",
             "–" if c["mask"]["residual_rms_in_uk"] is None else f"{c['mask']['residual_rms_in_uk']:.1f}"]
            for d, m, c in entries]
    header = ["method", "set", "within 1σ", "within 2σ", "max reliability deviation",
              f"kept by σ ≤ {entries[0][2]['mask']['threshold_uk']:g} µK", "RMS inside [µK]"]
    return f"""
### The σ it states

Fraction of pixels whose residual lies within 1σ and 2σ of the stated σ (a Gaussian: 0.683 and 0.954),
the largest distance of the reliability diagram from the diagonal, and the confidence mask:

```
{format_table(header, rows)}
```
"""


def best_classical_ratios(polarization: dict, method: str = "cenn") -> dict[str, tuple[str, float]]:
    """Per dataset of a report's ``polarization``: the classical method with the lowest mean residual
    D_ℓ^EE and ``method``'s residual EE over it."""
    results = polarization["results"]
    ratios = {}
    for d in polarization["datasets"]:
        ee = {m: per[d]["residual_ee_dl"]["mean"] for m, per in results.items()}
        best = min((m for m in ee if m not in NOT_CLASSICAL), key=ee.__getitem__)
        ratios[d] = (best, ee[method] / ee[best])
    return ratios


#: How to read a Q/U card's evaluation, per method.
POLARIZATION_READING = {
    "cenn": """Reading it: like the temperature reference model it minimises the squared error, so it
suppresses what it cannot tell from noise (EE out / in below 1 where the noise dominates; lower
still on a half-mission map, whose noise is twice as large); it is not an unbiased E-mode map. For
E-mode spectra cross the half-mission maps of a unit-response map: NILC on Q and U (full sky: `cenn
predict --maps ... --method nilc`; its half-split EE / in above) is the best cenn offers for that
(docs/learning.md, The unbiased polarization model).""",
    "cenn-unbiased": """Reading it: the map passes the CMB's Q and U with exactly unit response (the
CMB-free needlet ILC on Q and on U, plus a correction computed from CMB-free band differences only),
so the cross-spectrum of its maps from the two half-mission maps (half-split EE / in) is the input's
EE plus what foregrounds it leaves, free of noise bias: use it for E-mode spectra and
cross-correlations. Its residual is the unbiased map's: larger than the minimum-MSE polarization
model's (MODEL_CARD-polarization.md), which suppresses the noise-dominated scales.""",
}


def polarization_evaluation_section(metrics: dict, method: str = "cenn") -> str:
    """A Q/U model card's evaluation section (to its end) from a report's ``metrics.json``, for the
    model that ``method`` runs."""
    pol = metrics["polarization"]
    header, rows = polarization_table(pol)
    r = pol["ell_ranges"]
    sets = "; ".join(f"{d}: {i['n_patches']} patches, seed {i['seed']}"
                     for d, i in metrics["datasets"].items())
    ratios = [[d, best, f"{ratio:.2f}"] for d, (best, ratio) in best_classical_ratios(pol, method).items()]
    return f"""## Evaluation

`cenn evaluate` on stores with Q and U simulated with other seeds than training ({sets}), beside the
classical methods run on the bands' Q and U. Q/U RMS: the mean over patches of the residual RMS; Table 1
RMS: RMS of the mean residual patch; residual EE and BB: mean D_ℓ over {r['residual'][0]:g} ≤ ℓ <
{r['residual'][1]:g} ± the standard deviation over patches (µK²); EE out / in over {r['ee_recovery'][0]:g} ≤ ℓ
< {r['ee_recovery'][1]:g} at |b| > {pol['high_latitude_deg']:g}° (half-split: from the cross-spectrum of the
outputs on the two half-mission maps, without noise bias); residual BB over the lensing BB over
{r['lensing_bb'][0]:g} ≤ ℓ < {r['lensing_bb'][1]:g} (docs/evaluation.md, Polarization).

```
{format_table(header, rows)}
```

`{method}`'s residual EE over the best classical method's, per set (issue 28's target for the
minimum-MSE model: ≤ 0.5):

```
{format_table(["dataset", "best classical", f"{method} / best"], ratios)}
```

{POLARIZATION_READING[method]}
"""


def card_evaluation(metrics: dict, stokes: str, method: str = "cenn") -> str:
    """The evaluation section for a model of ``stokes`` (``"I"`` or ``"QU"``) that ``method`` runs."""
    if stokes == "QU":
        return polarization_evaluation_section(metrics, method)
    return evaluation_section(metrics, method)


def reevaluated(card: str, metrics: dict, stokes: str = "I", method: str = "cenn") -> str:
    """The model card ``card`` with its evaluation section replaced from ``metrics``."""
    if EVALUATION not in card:
        raise ValueError(f"the model card has no {EVALUATION.strip()!r} section to replace")
    return card[:card.index(EVALUATION)] + card_evaluation(metrics, stokes, method)


def without_methods(metrics: dict, methods: list[str]) -> dict:
    """``metrics`` (a report's metrics.json) with ``methods`` left out of every per-method table: a
    candidate evaluated beside the model that the card should not present as part of the package."""
    out = json.loads(json.dumps(metrics))
    for table in (out.get("results"), out.get("cross_sky"), (out.get("polarization") or {}).get("results")):
        for m in methods:
            (table or {}).pop(m, None)
    return out


def model_card(run: Path, metrics: dict, hardware: str, minutes: float, preview: bool,
               name: str = "reference") -> str:
    """The model card's Markdown for the shipped model ``name``, evaluated by ``metrics``."""
    model, card = load_weights(run / "weights.safetensors")
    stages, samples = training_stages(card, name)
    n_parameters = sum(p.numel() for p in model.parameters())
    m = card.metrics
    polarized = card.stokes == "QU"
    n_bands = len(card.frequencies_ghz)
    maps = (f"Q and U of {n_bands} bands ({2 * n_bands} maps, the bands' Q then their U, in the patch "
            "frame of cenn.sky.flat.spin2)" if polarized else f"{n_bands}")
    stokes = "'s Q and U" if polarized else ""
    status = (f"**Preview.** Trained on a CPU for {minutes:g} minutes ({samples:,} samples), far from the "
              "paper's 3 × 10⁷; a GPU-trained model will replace it. Its evaluation is below."
              if preview else "Reference model.")
    return f"""# cenn {name} model: `{SHIPPED[name]}`

{status}

## What it is

- Architecture: `{card.architecture}` ({ARCHITECTURES.get(card.architecture, "see cenn.model")},
  {n_parameters:,} parameters); parameters {json.dumps(card.architecture_params)}.
- Input: {maps} patches of {card.npix}×{card.npix} pixels of {card.pixel_arcsec:g}″ at
  {_join(card.frequencies_ghz)} GHz (beams {_join(card.beams_arcmin)}′),
  in {card.units}. Output: the CMB{stokes} at the {card.target_frequency_ghz:g} GHz beam, in {card.units}.
- Normalisation: `{card.normalization}` {json.dumps(card.normalization_params)} (output mapped back to
  µK exactly).

## Training

Simulated patches with every component ({", ".join(card.training["train"].get("sky_components") or [])})
and Planck noise, in {len(stages)} run(s), each starting from the previous one's weights:

{chr(10).join(stages)}

- In all: {samples:,} samples; {hardware}, {minutes:g} minutes ({samples / (60 * minutes):.1f} samples/s).
- Best validation loss of the last run {m.get("loss", float("nan")):.5f} (the 217 GHz input
  itself: {m.get("loss_input", float("nan")):.5f}); residual RMS {m.get("rms_uk", float("nan")):.1f} µK
  (input: {m.get("rms_input_uk", float("nan")):.1f} µK).

{card_evaluation(metrics, card.stokes, METHODS[name])}"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path, help="the cenn evaluate report of the weights")
    p.add_argument("--run", type=Path, help="the training run whose weights to ship (default: only "
                   "re-evaluate the shipped model's card)")
    p.add_argument("--hardware", help="where the runs trained (with --run)")
    p.add_argument("--minutes", type=float, help="wall time of all the runs (with --run)")
    p.add_argument("--preview", action="store_true")
    p.add_argument("--model", choices=sorted(SHIPPED), default="reference", help="which shipped model")
    p.add_argument("--leave-out", default="", help="comma-separated methods of the report the card does "
                   "not show (e.g. a candidate model evaluated beside this one)")
    args = p.parse_args()
    card_path = PRETRAINED / CARDS[args.model]
    target = PRETRAINED / SHIPPED[args.model]
    metrics = without_methods(json.loads((args.report / "metrics.json").read_text()),
                              [m for m in args.leave_out.split(",") if m])
    if args.run is None:
        stokes = load_weights(target)[1].stokes
        card_path.write_text(reevaluated(card_path.read_text(), metrics, stokes, METHODS[args.model]))
        print(f"rewrote the evaluation section of {card_path} from {args.report}")
        return
    if args.hardware is None or args.minutes is None:
        p.error("--run needs --hardware and --minutes")
    weights = args.run / "weights.safetensors"
    if weights.stat().st_size > MAX_BYTES:
        sys.exit(f"{weights} is {weights.stat().st_size:,} bytes, over the {MAX_BYTES:,} the package ships")
    card_path.write_text(model_card(args.run, metrics, args.hardware, args.minutes, args.preview,
                                    args.model))
    model, card = load_weights(weights)
    save_weights(target, model, portable(card))
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    listing = {**shipped_checksums(), target.name: digest}
    (PRETRAINED / CHECKSUMS).write_text("".join(f"{d}  {n}\n" for n, d in sorted(listing.items())))
    print(f"shipped {weights} as {target} (SHA-256 {digest})")


if __name__ == "__main__":
    main()
