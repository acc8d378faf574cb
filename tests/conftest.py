"""Shared fixtures: small, seeded configurations so the suite runs in seconds."""

import pytest
import torch

from cenn.sky.simulator import GeometryConfig, SimulationConfig


@pytest.fixture
def small_config() -> SimulationConfig:
    """64×64 patches of 90″ with a 16-pixel margin: the full physics on a small grid."""
    return SimulationConfig(seed=7, geometry=GeometryConfig(npix=64, pixel_arcsec=90.0, margin=16))


@pytest.fixture
def cmb_only_config() -> SimulationConfig:
    """Default geometry with only the CMB switched on."""
    from cenn.sky.components import COMPONENTS

    comps = {name: {"enabled": name == "cmb"} for name in COMPONENTS}
    return SimulationConfig(seed=3, components=comps)


@pytest.fixture(scope="session", autouse=True)
def cpu_without_bf16():
    """A CPU without AVX-512 BF16 or AMX as far as cenn can tell, for the whole session: networks run
    with the default precision ("auto") in float32 on every machine, so that tests comparing their
    outputs with exact numbers pass on a CPU with bfloat16 units too. Tests of bf16 ask for it, or
    set these checks themselves."""
    from cenn.runtime import BF16_CHECKS

    with pytest.MonkeyPatch.context() as patch:
        for name in BF16_CHECKS:
            patch.setattr(torch.cpu, name, lambda: False, raising=False)
        yield


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module that runs networks: two threads on a busy two-core
    machine can make many small convolutions 100× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_weights():
    """``tiny_weights(path, npix=64, pixel_arcsec=90.0)``: save untrained ``cenn-small`` weights (seed
    0) for Planck 143/217/353 GHz patches of that geometry to ``path``, and return the path."""
    from cenn.model import WeightsCard, build_model, save_weights

    def make(path, npix: int = 64, pixel_arcsec: float = 90.0):
        torch.manual_seed(0)
        card = WeightsCard(
            architecture="cenn-small", architecture_params={}, in_channels=3,
            frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.22, 4.90, 4.92],
            target_frequency_ghz=217.0, npix=npix, pixel_arcsec=pixel_arcsec, normalization="minmax",
            normalization_params={"reference_channel": 1})
        save_weights(path, build_model("cenn-small", 3), card)
        return path

    return make


@pytest.fixture(scope="session")
def tiny_sigma_weights():
    """``tiny_sigma_weights(path, npix=64, pixel_arcsec=90.0, sigma_output=True)``: save untrained
    ``unet-small`` weights (seed 0) that take the noise σ (and state a σ, unless ``sigma_output`` is
    False), asinh-normalised, with the Planck nominal noise levels on the card, and return the path."""
    from cenn.model import WeightsCard, build_model, save_weights

    def make(path, npix: int = 64, pixel_arcsec: float = 90.0, sigma_output: bool = True):
        torch.manual_seed(0)
        params = {"noise_input": True, "sigma_output": sigma_output}
        card = WeightsCard(
            architecture="unet-small", architecture_params=params, in_channels=3,
            frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=[7.22, 4.90, 4.92],
            target_frequency_ghz=217.0, npix=npix, pixel_arcsec=pixel_arcsec, normalization="asinh",
            normalization_params={"scale_uk": 100.0}, training={"noise_uk_per_pixel": [22.0, 31.2, 102.4]})
        save_weights(path, build_model("unet-small", 3, **params), card)
        return path

    return make


@pytest.fixture
def tiny_unbiased_weights():
    """``tiny_unbiased_weights(path, npix, pixel_arcsec, stokes)``: save untrained ``sp-nilc-unet``
    weights (small backbone, zero head: the CMB-free needlet ILC with σ = 100 µK), identity-normalised,
    for temperature or (``stokes = "QU"``) Q and U, and return the path."""
    from cenn.model import WeightsCard, build_model, save_weights
    from cenn.sky.seds import nominal_seds

    def make(path, npix: int = 64, pixel_arcsec: float = 90.0, stokes: str = "I"):
        beams, maps = [7.22, 4.90, 4.92], len(stokes)
        params = {"beams_arcmin": beams, "pixel_arcsec": pixel_arcsec, "reference": 1,
                  "backbone": "unet-small",
                  "seds": nominal_seds([143.0, 217.0, 353.0], ["143", "217", "353"], 1).tolist(),
                  **({"out_channels": 2} if maps == 2 else {})}
        card = WeightsCard(
            architecture="sp-nilc-unet", architecture_params=params, in_channels=3 * maps, stokes=stokes,
            frequencies_ghz=[143.0, 217.0, 353.0], beams_arcmin=beams, target_frequency_ghz=217.0, npix=npix,
            pixel_arcsec=pixel_arcsec, normalization="identity", normalization_params={},
            training={"noise_uk_per_pixel": [22.0, 31.2, 102.4]})
        save_weights(path, build_model("sp-nilc-unet", 3 * maps, **params), card)
        return path

    return make


#: The seeded Q/U stores of :func:`qu_network`: name → (seed, patches); 32² patches of 90″ at |b| > 30°.
QU_STORES = {"train": (1, 200), "val": (2, 32), "test": (3, 64)}


@pytest.fixture(scope="session")
def iqu_store():
    """``iqu_store(folder, name, seed, n, stokes="IQU")``: simulate ``n`` seeded 32² patches of 90″ at
    |b| > 30° (full sky model, Q and U unless ``stokes = "I"``) to ``folder/name.zarr``; its path."""
    from cenn.data.simulate import simulate
    from cenn.sky.simulator import RegionConfig

    def make(folder, name: str, seed: int, n: int, stokes: str = "IQU"):
        config = SimulationConfig(seed=seed, geometry=GeometryConfig(npix=32, pixel_arcsec=90.0, margin=16),
                                  region=RegionConfig(30.0, 90.0), stokes=stokes)
        return simulate(folder / f"{name}.zarr", n, config, chunk_size=64, progress=False).path

    return make


@pytest.fixture(scope="session")
def qu_train_config():
    """``qu_train_config(data, epochs=8, model="unet")``: a Q/U training configuration (``[data] stokes =
    "QU"`` with ``data``'s entries; a three-level U-Net, asinh on 10 µK, MSE, AdamW 3e-3 one-cycle, batches
    of 8 on the CPU, seed 0)."""
    from cenn.train import TrainConfig

    def make(data: dict, epochs: int = 8, model: str = "unet"):
        return TrainConfig.from_dict({
            "model": {"name": model, "params": {"widths": [8, 16, 32]} if model == "unet" else {}},
            "normalization": {"name": "asinh", "params": {"scale_uk": 10.0}}, "loss": {"name": "mse"},
            "optim": {"name": "adamw", "lr": 3e-3, "l2": 0.0, "schedule": "onecycle"},
            "data": {"stokes": "QU", "shuffle_window": 4, **data},
            "trainer": {"epochs": epochs, "batch_size": 8, "accelerator": "cpu", "devices": 1,
                        "progress": False, "seed": 0},
        })

    return make


@pytest.fixture(scope="session")
def qu_network(tmp_path_factory, iqu_store, qu_train_config):
    """A small Q/U U-Net trained for 200 steps (8 epochs of 25 batches of 8, one thread, ~10 s) on the
    ``train`` store of :data:`QU_STORES`: ``{"weights": its weights, name: each store's path}``."""
    from cenn.train import train

    root = tmp_path_factory.mktemp("qu_network")
    found = {name: iqu_store(root, name, seed, n) for name, (seed, n) in QU_STORES.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found["weights"] = train(qu_train_config({"train": str(found["train"]), "val": str(found["val"])}),
                                 root / "run")
    finally:
        torch.set_num_threads(threads)
    return found
