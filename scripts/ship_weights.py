"""Ship a training run's weights as the package's reference model, with its model card.

    python scripts/ship_weights.py RUN_DIR REPORT_DIR --hardware "2-core AMD EPYC (CPU)" \
        --minutes 86 [--preview]

Copies ``RUN_DIR/weights.safetensors`` to ``src/cenn/pretrained/cenn-paper-preview.safetensors``
and writes ``src/cenn/pretrained/MODEL_CARD.md`` from the run's configuration, its validation
metrics and the evaluation report's summary (``REPORT_DIR/metrics.json``, from cenn evaluate).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from cenn.evaluate.report import format_table, summary_table
from cenn.model import load_weights
from cenn.pretrained import CHECKSUMS, DEFAULT

PRETRAINED = Path(__file__).resolve().parents[1] / "src" / "cenn" / "pretrained"
MAX_BYTES = 25_000_000


def _join(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def model_card(run: Path, report: Path, hardware: str, minutes: float, preview: bool) -> str:
    """The model card's Markdown."""
    _, card = load_weights(run / "weights.safetensors")
    metrics = json.loads((report / "metrics.json").read_text())
    t = card.training
    config = t["config"]
    steps, epochs = t["global_step"], t["epochs"]
    samples = steps * config["trainer"]["batch_size"]
    header, rows = summary_table(metrics)
    sets = "; ".join(f"{d}: {i['n_patches']} patches, seed {i['seed']}"
                     for d, i in metrics["datasets"].items())
    status = ("**Preview.** Trained on a CPU for a short time, far from the paper's 3 × 10⁷ samples; "
              "expect large residuals in the Galactic plane. A GPU-trained model will replace it."
              if preview else "Reference model.")
    return f"""# cenn reference model: `{DEFAULT}`

{status}

## What it is

- Architecture: `{card.architecture}` (the paper's CENN: 6 stride-2 convolutions and 6 transposed
  convolutions with skip connections, 6,207,449 parameters).
- Input: {len(card.frequencies_ghz)} patches of {card.npix}×{card.npix} pixels of {card.pixel_arcsec:g}″ at
  {_join(card.frequencies_ghz)} GHz (beams {_join(card.beams_arcmin)}′),
  in {card.units}. Output: the CMB at the {card.target_frequency_ghz:g} GHz beam, in {card.units}.
- Normalisation: `{card.normalization}` {json.dumps(card.normalization_params)} (per patch; output mapped
  back to µK exactly).

## Training

- Data: {t["train"].get("n_patches")} simulated patches over the whole sky (seed {t["train"].get("seed")}),
  all components ({", ".join(t["train"].get("sky_components") or [])}) and Planck noise; validation
  {t["val"].get("n_patches")} patches (seed {t["val"].get("seed")}).
- Optimiser: {config["optim"]["name"]}, learning rate {config["optim"]["lr"]}, L2 {config["optim"]["l2"]},
  batch {config["trainer"]["batch_size"]}, precision {config["trainer"]["precision"]}.
- Length: {epochs} epochs, {steps} steps, {samples:,} samples.
- Hardware and time: {hardware}, {minutes:g} minutes ({samples / (60 * minutes):.1f} samples/s).
- Best validation loss {card.metrics.get("loss", float("nan")):.5f} (predicting the 217 GHz input:
  {card.metrics.get("loss_input", float("nan")):.5f}).

## Evaluation

`cenn evaluate` against the classical methods on validation sets simulated with other seeds than
training ({sets}); the paper's values (6,000 / 2,000 patches) in the `paper` rows. Patch RMS: the mean over
patches of the residual RMS; Table 1 RMS: RMS of the mean residual patch; ΔD_ℓ and residual D_ℓ
averaged over all ℓ (µK²).

```
{format_table(header, rows)}
```
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("report", type=Path)
    p.add_argument("--hardware", required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--preview", action="store_true")
    args = p.parse_args()
    weights = args.run / "weights.safetensors"
    if weights.stat().st_size > MAX_BYTES:
        sys.exit(f"{weights} is {weights.stat().st_size:,} bytes, over the {MAX_BYTES:,} the package ships")
    (PRETRAINED / "MODEL_CARD.md").write_text(model_card(args.run, args.report, args.hardware, args.minutes,
                                                          args.preview))
    shutil.copyfile(weights, PRETRAINED / DEFAULT)
    digest = hashlib.sha256((PRETRAINED / DEFAULT).read_bytes()).hexdigest()
    (PRETRAINED / CHECKSUMS).write_text(f"{digest}  {DEFAULT}\n")
    print(f"shipped {weights} as {PRETRAINED / DEFAULT} (SHA-256 {digest})")


if __name__ == "__main__":
    main()
