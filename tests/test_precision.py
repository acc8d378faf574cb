"""The precision networks run in: ``auto`` is bfloat16 autocast on a CPU with AVX-512 BF16 or AMX and
float32 elsewhere, ``32`` and ``bf16`` force theirs, and the one chosen is recorded with the outputs.
The CPU's bfloat16 units are mocked through torch's own checks (float32 by default: ``conftest.py``)."""

import numpy as np
import pytest
import torch

from cenn.cli import build_parser
from cenn.predict import Predictor
from cenn.runtime import BF16_CHECKS, bf16_fast, resolve_precision
from cenn.separators import NetworkSeparator

META = {"frequencies_ghz": [143.0, 217.0, 353.0], "pixel_arcsec": 90.0, "units": "uK_CMB"}

pytestmark = pytest.mark.usefixtures("one_thread")


def _cpu(monkeypatch, avx512_bf16: bool, amx: bool) -> None:
    """Mock torch's checks of the CPU's AVX-512 BF16 and AMX tile units."""
    for name, present in zip(BF16_CHECKS, (avx512_bf16, amx), strict=True):
        monkeypatch.setattr(torch.cpu, name, lambda present=present: present, raising=False)


@pytest.mark.parametrize("avx512_bf16, amx, fast", [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_bf16_is_fast_on_a_cpu_with_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, fast):
    _cpu(monkeypatch, avx512_bf16, amx)
    assert bf16_fast("cpu") is fast and bf16_fast(torch.device("cpu")) is fast
    assert resolve_precision("auto", "cpu") == ("bf16" if fast else "32")


def test_other_devices_and_a_torch_without_the_checks_keep_float32(monkeypatch):
    _cpu(monkeypatch, True, True)
    assert not bf16_fast("cuda") and not bf16_fast("cuda:1") and not bf16_fast("mps")
    assert resolve_precision("auto", "cuda") == "32"
    for name in BF16_CHECKS:
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert not bf16_fast("cpu")


@pytest.mark.parametrize("fast", [False, True])
def test_an_asked_precision_is_kept_and_others_are_refused(monkeypatch, fast):
    _cpu(monkeypatch, fast, fast)
    assert resolve_precision("32", "cpu") == "32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match=r"precision must be one of auto, 32, bf16, got 'fp16'"):
        resolve_precision("fp16", "cpu")


@pytest.fixture(scope="module")
def weights(tiny_weights, tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    return (100 * np.random.default_rng(2).standard_normal((2, 3, 64, 64))).astype(np.float32)


@pytest.mark.parametrize("fast, chosen", [(False, "32"), (True, "bf16")])
def test_the_predictor_runs_auto_as_the_precision_it_resolves_to(monkeypatch, weights, maps, fast, chosen):
    forced = {p: Predictor(weights, precision=p).predict(maps, **META) for p in ("32", "bf16")}
    assert np.abs(forced["bf16"] - forced["32"]).max() > 0  # the two differ, so the check below can fail
    _cpu(monkeypatch, fast, False)
    auto = Predictor(weights)
    assert auto.precision == chosen
    np.testing.assert_array_equal(auto.predict(maps, **META), forced[chosen])


def test_the_method_settings_record_the_precision_chosen(monkeypatch, weights):
    _cpu(monkeypatch, False, True)
    assert NetworkSeparator(weights).describe()["precision"] == "bf16"
    assert NetworkSeparator(weights, precision="32").describe()["precision"] == "32"


@pytest.mark.parametrize("argv", [["predict", "in.npy", "out.npy"], ["predict", "--maps", "a.fits"],
                                  ["evaluate", "store.zarr", "--out", "r"], ["demo"]])
def test_every_command_that_runs_a_network_defaults_to_auto(argv):
    parser = build_parser()
    assert parser.parse_args(argv).precision == "auto"
    assert parser.parse_args([*argv, "--precision", "32"]).precision == "32"


def test_the_demo_runs_its_networks_in_the_precision_asked(monkeypatch, weights):
    from cenn.demo import demo_separators

    _cpu(monkeypatch, True, False)
    assert demo_separators(("cenn",), weights, "cpu")["cenn"].predictor.precision == "bf16"
    assert demo_separators(("cenn",), weights, "cpu", "32")["cenn"].predictor.precision == "32"
