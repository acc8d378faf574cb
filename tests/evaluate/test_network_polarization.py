"""The Q/U network in ``cenn evaluate``: the ``cenn`` method's Q/U weights (``polarization_weights``,
``--polarization-weights``) separate the bands' Q and U beside its temperature weights; without them
the network is listed as skipped for Q and U; weights of the wrong kind, and Q/U weights on stores
without Q and U, are refused before any work."""

import json
import re

import pytest

from cenn.cli import main
from cenn.demo import demo_separators
from cenn.evaluate.config import EvaluationConfig
from cenn.evaluate.run import evaluate
from cenn.separators import build_separator

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = EvaluationConfig(noise_factors=[], injection=False)


@pytest.fixture(scope="module")
def temperature_weights(tmp_path_factory, tiny_sigma_weights):
    """Untrained ``unet-small`` temperature weights for 32² patches (the temperature pass needs some)."""
    return tiny_sigma_weights(tmp_path_factory.mktemp("t") / "t.safetensors", npix=32, sigma_output=False)


def _plain(metrics: dict) -> dict:
    """``metrics`` with arrays as lists, for comparison."""
    return json.loads(json.dumps(metrics, default=lambda x: x.tolist()))


def _qu_rms(metrics, method: str) -> float:
    """The mean per-patch residual RMS (µK) of ``method`` over Q and U on the held-out set."""
    pixel = metrics["polarization"]["results"][method]["high"]["pixel"]
    return (pixel["q"]["residual_rms_mean_uk"] + pixel["u"]["residual_rms_mean_uk"]) / 2


def test_the_q_u_network_is_evaluated_beside_the_classical_methods(qu_network, temperature_weights,
                                                                   tmp_path):
    """The 200-step Q/U U-Net (``qu_network``) on its held-out 64 patches (seed 3, 32², |b| > 30°):
    a Q/U residual RMS below a tenth of the 217 GHz Q/U maps' and of ILC's (measured 2.97 against 42.4
    and 40.7 µK; residual EE over 50-1500 7.8 against ILC's 50.1 µK²); every Q/U metric filled; ILC's
    temperature and Q/U numbers those of an evaluation without the Q/U weights, in which the network is
    skipped for Q and U, saying why."""
    store = [("high", qu_network["test"])]
    cenn = build_separator("cenn", weights=temperature_weights, polarization_weights=qu_network["weights"])
    methods = {"cenn": cenn, "ilc": build_separator("ilc"), "target-band": build_separator("target-band")}
    metrics = evaluate(store, methods, tmp_path / "with", CONFIG, progress=False)
    network, band, ilc = (_qu_rms(metrics, m) for m in ("cenn", "target-band", "ilc"))
    assert band == pytest.approx(42.4, rel=0.05)  # the seeded set: what the network has to beat
    assert network < 0.1 * band and network < 0.1 * ilc, (network, band, ilc)
    result = metrics["polarization"]["results"]["cenn"]["high"]
    assert result["n_patches"] == 64
    assert 0 < result["residual_ee_dl"]["mean"] < 0.5 * metrics["polarization"]["results"]["ilc"]["high"][
        "residual_ee_dl"]["mean"]
    assert result["ee_recovery"]["ratio"] is not None and result["te"]["amplitude"] is not None
    assert metrics["polarization"]["skipped"] == {}
    assert metrics["methods"]["cenn"]["polarization_weights"] == str(qu_network["weights"])

    temperature_only = build_separator("cenn", weights=temperature_weights)
    without = evaluate(store, {"cenn": temperature_only, "ilc": build_separator("ilc")}, tmp_path / "without",
                       CONFIG, progress=False)
    assert "--polarization-weights" in without["polarization"]["skipped"]["cenn"]
    assert "cenn" not in without["polarization"]["results"]
    without, metrics = _plain(without), _plain(metrics)
    assert without["results"]["ilc"] == metrics["results"]["ilc"]
    assert without["results"]["cenn"] == metrics["results"]["cenn"]  # the temperature network alone
    assert without["polarization"]["results"]["ilc"] == metrics["polarization"]["results"]["ilc"]


def test_weights_of_the_wrong_kind_are_refused(qu_network, temperature_weights):
    with pytest.raises(ValueError, match=r"separate Q and U .*--polarization-weights"):
        build_separator("cenn", weights=qu_network["weights"])
    with pytest.raises(ValueError, match=r"separate the temperature .*data.stokes = \"QU\""):
        build_separator("cenn", weights=temperature_weights, polarization_weights=temperature_weights)
    with pytest.raises(ValueError, match=r"separate Q and U"):  # cenn demo: before it simulates anything
        demo_separators(("cenn",), qu_network["weights"], "cpu")
    unbiased = build_separator("cenn-unbiased", weights=temperature_weights)
    assert "polarization_weights under [methods.cenn-unbiased]" in unbiased.polarization_refusal()


def test_q_u_weights_on_a_temperature_store_are_refused_before_any_work(qu_network, temperature_weights,
                                                                          iqu_store, tmp_path, capsys):
    store = iqu_store(tmp_path, "t", 4, 4, stokes="I")
    cenn = build_separator("cenn", weights=temperature_weights, polarization_weights=qu_network["weights"])
    with pytest.raises(ValueError, match=r"would not be used.*hold temperature only.*--stokes IQU"):
        evaluate([("high", store)], {"cenn": cenn}, tmp_path / "r", CONFIG, progress=False)
    assert not (tmp_path / "r").exists()
    t_weights, qu_weights = str(temperature_weights), str(qu_network["weights"])
    cases = [
        (["--methods", "ilc", "--polarization-weights", qu_weights], "add cenn to --methods"),
        (["--methods", "cenn", "--weights", t_weights, "--polarization-weights", "polarization"],
         "would not be used.*hold temperature only"),
        (["--methods", "cenn", "--weights", qu_weights], "as the polarization weights"),
    ]
    for options, message in cases:
        assert main(["evaluate", str(store), "--out", str(tmp_path / "cli"), *options]) == 2
        assert re.search(message, capsys.readouterr().err), message
        assert not (tmp_path / "cli").exists()


def test_without_q_u_weights_cenn_runs_the_shipped_polarization_model(temperature_weights, iqu_store,
                                                                      tmp_path):
    store, out = iqu_store(tmp_path, "q", 6, 4), tmp_path / "r"
    assert main(["evaluate", f"high={store}", "--methods", "cenn,target-band", "--weights",
                 str(temperature_weights), "--out", str(out), "--noise-factors", "none", "--no-half-split",
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["methods"]["cenn"]["polarization_weights"].endswith("cenn-polarization-cpu.safetensors")
    assert metrics["polarization"]["skipped"] == {}
    # the shipped model on 4 patches at |b| > 30°: far below the 217 GHz Q/U maps' residual (their noise)
    network, band = (metrics["polarization"]["results"][m]["high"]["pixel"]["q"]["residual_rms_mean_uk"]
                     for m in ("cenn", "target-band"))
    assert network < 0.2 * band
