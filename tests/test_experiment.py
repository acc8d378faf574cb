"""`cenn experiment`: the paper's protocol as shipped, and its miniature run end to end, resumed."""

import json

import pytest

from cenn.cli import main
from cenn.config import ConfigError
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
