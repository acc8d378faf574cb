"""Training: configuration, the Lightning task, data loaders, and the run folder."""

from cenn.train.config import TrainConfig
from cenn.train.run import train

__all__ = ["TrainConfig", "train"]
