"""The training task: the network between a normalisation and its inverse, the paper's loss."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from cenn.data.normalization import build_normalization
from cenn.data.stokes import maps_per_band, reference_channels
from cenn.model import build_model
from cenn.model.apply import apply_network, network_inputs, noise_input, sigma_output
from cenn.train.config import TrainConfig
from cenn.train.losses import build_loss, gaussian_nll

#: Keras's Adagrad defaults, kept so the paper's learning rate means what it meant there.
KERAS_ADAGRAD = {"initial_accumulator_value": 0.1, "eps": 1e-7}


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: the run stops (see :meth:`CENNTask.check_finite`)."""


def nonfinite_tensors(net: torch.nn.Module) -> list[str]:
    """Names of the floating-point tensors of ``net``'s state that hold NaN or infinite values."""
    return [name for name, t in net.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


class CENNTask(L.LightningModule):
    """Trains a registered network to map observed patches (µK_CMB) to the CMB.

    The loss is ``loss.name`` in normalised space (the paper's MSE by default, see
    :mod:`cenn.train.losses`), plus ``l2 · Σ w²`` over convolution kernels. Validation also
    reports the residual mean square in µK² and, as a yardstick, both figures for a "network"
    that returns the target band's input map unchanged (``*_input``).

    With ``data.stokes = "QU"`` the network takes the bands' Q then U ``(B, 2C, H, W)`` and returns
    the CMB's Q and U ``(B, 2, H, W)`` (:mod:`cenn.data.stokes`); the loss is over both maps, the
    yardstick the target band's Q and U.

    Args:
        cfg: the run's configuration.
        in_channels: number of input bands (a Q/U network takes twice as many maps).
        reference_channel: index of the target band among the bands (217 GHz).
    """

    def __init__(self, cfg: TrainConfig, in_channels: int, reference_channel: int):
        super().__init__()
        # a plain record in the checkpoint and the logs (the run reads its config.toml, not this)
        self.save_hyperparameters({"config": cfg.to_dict(), "in_channels": in_channels,
                                   "reference_channel": reference_channel})
        self.cfg = cfg
        self.maps = maps_per_band(cfg.data.stokes)
        self.net = build_model(self.cfg.model.name, in_channels * self.maps, **self.cfg.model.params)
        self.normalization = build_normalization(self.cfg.normalization.name,
                                                 **self.cfg.normalization.params)
        self.reference_channels = reference_channels(reference_channel, in_channels, cfg.data.stokes)
        self.loss = build_loss(self.cfg.loss.name)
        self._kernels = [p for n, p in self.net.named_parameters() if n.endswith("weight") and p.dim() == 4]
        # the callable the steps run: ``net`` itself or its compiled wrapper, kept out of the module
        # registry so the checkpoint holds each tensor once, under ``net.``, with or without compile
        object.__setattr__(self, "_forward", self.net)

    # --- set-up -------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """channels_last and torch.compile as configured (the parameters stay those of ``net``,
        so checkpoints do not depend on either)."""
        if self.cfg.trainer.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.cfg.trainer.compile and self._forward is self.net:
            object.__setattr__(self, "_forward", torch.compile(self.net))

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        o = self.cfg.optim
        if o.name == "adagrad":
            optimizer = torch.optim.Adagrad(self.net.parameters(), lr=o.lr, **{**KERAS_ADAGRAD, **o.params})
        else:
            kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[o.name]
            optimizer = kind(self.net.parameters(), lr=o.lr, **o.params)
        if o.schedule == "constant":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if o.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=o.lr, total_steps=steps, pct_start=o.warmup_fraction,
                div_factor=25.0, final_div_factor=400.0, cycle_momentum=False)
        else:
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- the network in µK ----------------------------------------------------------------
    def _prepare(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = batch["inputs"]
        stats = self.normalization.fit(inputs)
        sigma = batch["noise_sigma"] if noise_input(self.net) else None
        x = network_inputs(self.normalization, inputs, stats, sigma)
        if self.cfg.trainer.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, stats

    def forward(self, inputs: torch.Tensor, noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """CMB ``(B, 1, H, W)`` µK_CMB from observed ``inputs (B, C, H, W)`` µK_CMB (and their noise
        σ, µK_CMB, for a network that takes it); Q and U ``(B, 2, H, W)`` from ``(B, 2C, H, W)``."""
        sigma = noise_sigma if noise_input(self.net) else None
        return apply_network(self._forward, self.normalization, inputs, self.cfg.trainer.channels_last,
                             sigma, self.maps)[0]

    # --- steps ----------------------------------------------------------------------------------
    def check_finite(self, loss: torch.Tensor, batch: dict, stage: str) -> None:
        """Stop the run when ``loss`` is NaN or infinite, saying whether the patches of ``batch``
        (``stage``: training or validation) or the network are to blame."""
        if bool(torch.isfinite(loss)):
            return
        at = f"epoch {self.current_epoch}, step {self.global_step}"
        bad = torch.zeros(batch["inputs"].shape[0], dtype=torch.bool, device=loss.device)
        for key in ("inputs", "target"):
            if key in batch:
                bad |= ~torch.isfinite(batch[key]).flatten(1).all(1)
        if bool(bad.any()):
            ids = batch.get("index", batch.get("indices"))
            which = f" {ids[bad].tolist()}" if ids is not None else ""
            d = self.cfg.data
            source = d.val if stage == "validation" else ("the streamed simulation" if d.stream else d.train)
            raise TrainingDiverged(f"the {stage} loss is {loss.item()} at {at}: {stage} patches{which} of "
                                   f"{source} hold NaN or infinite values; that data is damaged: rerun the "
                                   "`cenn simulate` command that wrote it to repair it, or recreate it")
        raise TrainingDiverged(f"training diverged: the {stage} loss became {loss.item()} at {at} (from "
                               f"finite patches); lower the learning rate (optim.lr = {self.cfg.optim.lr}, "
                               "--lr) or check the training data, then start again with --overwrite or in a "
                               "new folder")

    def _losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, stats = self._prepare(batch)
        y = self.normalization.normalize_target(batch["target"], stats)
        out = self._forward(x).float()
        pred = out[:, :self.maps]
        losses = {"loss": self.loss(pred, y), "pred": pred, "stats": stats, "y": y}
        if sigma_output(self.net):
            log_sigma = out[:, self.maps:]
            losses["nll"] = gaussian_nll(pred.detach(), log_sigma, y)
            losses["within_1sigma"] = ((pred - y).abs() < torch.exp(log_sigma)).float().mean()
        return losses

    def _objective(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss to minimise: the mean's loss, plus the weighted σ likelihood when there is a σ."""
        if "nll" not in out:
            return out["loss"]
        return out["loss"] + self.cfg.loss.sigma_weight * out["nll"]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self._losses(batch)
        l2 = sum(k.pow(2).sum() for k in self._kernels) * self.cfg.optim.l2
        loss = self._objective(out) + l2
        self.check_finite(loss, batch, "training")
        bs = batch["inputs"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        if "nll" in out:
            self.log("train/nll", out["nll"], batch_size=bs)
        self.log("train/l2", l2, batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self._losses(batch)
        self.check_finite(out["loss"], batch, "validation")
        inputs, target, stats = batch["inputs"], batch["target"], out["stats"]
        ref = inputs[:, self.reference_channels]
        pred_uk = self.normalization.denormalize_target(out["pred"], stats)
        bs = inputs.shape[0]
        self.log("val/loss", out["loss"], prog_bar=True, sync_dist=True, batch_size=bs)
        if "nll" in out:
            self.log_dict({"val/nll": out["nll"], "val/within_1sigma": out["within_1sigma"]},
                          sync_dist=True, batch_size=bs)
        self.log_dict({
            "val/mse_uk2": (pred_uk - target).pow(2).mean(),
            "val/loss_input": self.loss(self.normalization.normalize_target(ref, stats), out["y"]),
            "val/mse_input_uk2": (ref - target).pow(2).mean(),
        }, sync_dist=True, batch_size=bs)
