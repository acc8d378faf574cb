"""One configuration base: every configuration reads and writes its table the same way and names
its table in messages."""

import pytest

from cenn.config import ConfigBase, ConfigError
from cenn.evaluate.config import EvaluationConfig
from cenn.experiment import ExperimentConfig
from cenn.sky.simulator import SimulationConfig
from cenn.train import TrainConfig


@pytest.mark.parametrize(("cls", "section"), [(SimulationConfig, "simulation"), (TrainConfig, "train"),
                                              (EvaluationConfig, "evaluation")])
def test_each_configuration_round_trips_and_names_its_table(cls, section):
    assert issubclass(cls, ConfigBase) and cls.SECTION == section
    config = cls()
    assert cls.from_dict(config.to_dict()).to_dict() == config.to_dict()
    with pytest.raises(ConfigError, match=rf"^{section}: unknown key\(s\) \['bogus'\]"):
        cls.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match=r"^run\.toml: unknown key"):
        cls.from_dict({"bogus": 1}, "run.toml")


def test_the_experiment_configuration_round_trips():
    paper = ExperimentConfig.load("paper")
    assert isinstance(paper, ConfigBase) and ExperimentConfig.from_dict(paper.to_dict()) == paper
