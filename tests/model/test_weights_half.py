"""Half-precision weights files: half the size, loaded as float32, predictions within a stated µK of fp32."""

import numpy as np
import pytest
import torch
from safetensors import safe_open

from cenn.cli import main
from cenn.model import export_weights, load_weights
from cenn.predict import Predictor
from cenn.sky.simulator import PatchSimulator

#: Largest |Δ| in µK between half- and full-precision predictions of the untrained 64² ``cenn-small`` on
#: eight simulated patches (outputs up to ~850 µK): measured 0.17 µK (fp16) and 1.8 µK (bf16), about 2e-4
#: and 2e-3 of the largest output; the bounds leave a factor ~3.
BOUND_UK = {"fp16": 0.5, "bf16": 5.0}


@pytest.fixture(scope="module")
def patches(one_thread) -> np.ndarray:
    """Eight simulated 64×64 patches, (8, 3, 64, 64) µK_CMB at 143/217/353 GHz (the conftest geometry)."""
    from cenn.sky.simulator import GeometryConfig, SimulationConfig

    config = SimulationConfig(seed=7, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16))
    return PatchSimulator(config).simulate(range(8)).inputs.numpy()


def _predict(path, patches: np.ndarray) -> np.ndarray:
    return np.asarray(Predictor(path).predict(patches, frequencies_ghz=[143, 217, 353], pixel_arcsec=90))


@pytest.mark.parametrize("name,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_weights_predict_within_bound_at_half_the_size(tmp_path, tiny_weights, patches, name, dtype):
    full = tiny_weights(tmp_path / "fp32.safetensors")
    half = tmp_path / f"{name}.safetensors"
    export_weights(full, half, dtype)

    with safe_open(half, framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {dtype}
    assert 0.49 < half.stat().st_size / full.stat().st_size < 0.52
    model, card = load_weights(half)  # the stored SHA-256 is that of the half-precision tensors
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert card == load_weights(full)[1]

    reference = _predict(full, patches)
    error = np.abs(_predict(half, patches) - reference).max()
    assert 0 < error < BOUND_UK[name]
    assert np.abs(reference).max() > 500  # the bound is on outputs of hundreds of µK


def test_export_weights_command(tmp_path, tiny_weights, capsys):
    full = tiny_weights(tmp_path / "fp32.safetensors")
    assert main(["export-weights", str(full), str(tmp_path / "bf16.safetensors"), "--dtype", "bf16"]) == 0
    assert "bf16" in capsys.readouterr().out
    model, _ = load_weights(tmp_path / "bf16.safetensors")
    reference, _ = load_weights(full)
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(p, q.to(torch.bfloat16).float()), name
