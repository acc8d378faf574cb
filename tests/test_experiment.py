"""`cenn experiment`: the paper's protocol as shipped, and its miniature run end to end, resumed."""

import json

import pytest

from cenn.cli import main
from cenn.config import ConfigError
from cenn.data.store import DatasetStore
from cenn.experiment import ExperimentConfig, run_experiment, shipped_configs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_paper_protocol_is_shipped_with_the_papers_numbers():
    assert {"paper", "paper-smoke"} <= set(shipped_configs())
    paper = ExperimentConfig.load("paper")
    sizes = {name: (d.patches, d.band) for name, d in paper.datasets.items()}
    assert sizes == {"train": (60000, "all"), "test": (6000, "all"), "all": (6000, "all"),
                     "inner": (2000, "inner"), "intermediate": (2000, "intermediate"), "high": (2000, "high")}
    assert (paper.train_dataset, paper.val_dataset) == ("train", "test")
    assert paper.train["trainer"]["epochs"] == 500 and paper.train["trainer"]["batch_size"] == 32
    assert paper.train["optim"] == {"name": "adagrad", "lr": 0.05}
    assert paper.evaluate.datasets == ["all", "inner", "intermediate", "high"]
    assert len({d.seed for d in paper.datasets.values()}) == 6


def test_smoke_experiment_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "paper-smoke", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert set(metrics["results"]) == {"cenn", "ilc", "hilc", "nilc", "wiener", "target-band"}
    assert list(metrics["datasets"]) == ["all", "inner", "intermediate", "high"]
    assert metrics["results"]["cenn"]["inner"]["n_patches"] == 8
    stamps = {p: p.stat().st_mtime_ns for p in [out / "report" / "metrics.json",
                                                out / "run" / "weights.safetensors",
                                                out / "data" / "train.zarr" / "zarr.json"]}
    config = ExperimentConfig.load("paper-smoke")
    run_experiment(config, out, progress=False)  # everything done: nothing is redone
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    config.evaluate.methods = ["ilc"]
    with pytest.raises(ConfigError, match="different experiment"):
        run_experiment(config, out, progress=False)


@pytest.mark.parametrize("change, words", [
    (lambda d: d["evaluate"].update(datasets=["nowhere"]), "no dataset named 'nowhere'"),
    (lambda d: d["datasets"]["test"].update(seed=1), "distinct seeds"),
    (lambda d: d["datasets"]["test"].update(band="north"), "band must be one of"),
    (lambda d: d["datasets"]["test"].update(patches=0), "patches must be >= 1"),
    (lambda d: d["simulation"].update(seed=3), "set per dataset"),
])
def test_bad_experiments_are_refused(change, words):
    data = ExperimentConfig.load("paper-smoke").to_dict()
    change(data)
    from cenn.config import from_dict

    with pytest.raises(ConfigError, match=words):
        from_dict(ExperimentConfig, data, "experiment")


def _small(**changes):
    """paper-smoke with every store of 8 patches; ``changes`` replace top-level tables."""
    data = ExperimentConfig.load("paper-smoke").to_dict()
    data["datasets"]["train"]["patches"] = 8
    data.update(changes)
    return data


@pytest.mark.parametrize("change, error, words", [
    (lambda d: d["evaluate"].update(methods=["cenn", "ilcc"]), ValueError, "unknown method 'ilcc'"),
    (lambda d: d["evaluate"]["settings"].update(max_patchs=3), ConfigError, r"key\(s\) \['max_patchs"),
    (lambda d: d["evaluate"]["options"].update(nilc={"foo": 1}), ValueError, "method 'nilc': bad options"),
    (lambda d: d["evaluate"]["options"].update(wienr={}), ValueError, "unknown method 'wienr'"),
    (lambda d: d["train"].update(optim={"foo": 1}), ConfigError, r"train\.optim: unknown key"),
    (lambda d: d["train"]["model"].update(params={"widths": [4]}), ConfigError, "has no parameter"),
])
def test_a_later_step_is_refused_before_any_store_is_simulated(tmp_path, change, error, words):
    from cenn.config import from_dict

    data = _small()
    change(data)
    with pytest.raises(error, match=words):
        run_experiment(from_dict(ExperimentConfig, data, "experiment"), tmp_path / "exp", progress=False)
    assert not (tmp_path / "exp").exists()


def test_a_missing_gpu_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["experiment", "paper-smoke", "--out", str(tmp_path / "exp"), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("cenn experiment: error: --device cuda: no CUDA GPU is available on "
                                       "this machine (torch.cuda.is_available() is False): use --device "
                                       "cpu\n")
    assert not (tmp_path / "exp").exists()


def test_a_changed_experiment_keeps_the_outputs_it_leaves_as_they_were(tmp_path):
    from cenn.config import from_dict

    out = tmp_path / "exp"
    first = from_dict(ExperimentConfig, _small(), "experiment")
    run_experiment(first, out, steps=("simulate",), progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "data").glob("*.zarr/zarr.json")}
    # other evaluation settings: no store changes, none is redone and no --overwrite is needed
    second = from_dict(ExperimentConfig, _small(), "experiment")
    second.evaluate.methods = ["ilc", "target-band"]
    run_experiment(second, out, steps=("simulate",), progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # another test set: only its store is refused, and redone with --overwrite
    second.datasets["test"].patches = 16
    with pytest.raises(ConfigError, match=r"holds a different experiment .*: data/test\.zarr were made with"):
        run_experiment(second, out, steps=("simulate",), progress=False)
    run_experiment(second, out, steps=("simulate",), progress=False, overwrite=True)
    changed = {p for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    assert changed == {out / "data" / "test.zarr" / "zarr.json"}
    assert DatasetStore.open(out / "data" / "test.zarr").n_patches == 16
