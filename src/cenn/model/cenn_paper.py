"""The CENN network of Casas et al. (2022): a fully convolutional encoder–decoder with skip connections.

Registered variants:

- ``cenn-paper``: the paper's network, 6,207,449 parameters for 3 input maps.
- ``cenn-small``: the same with a quarter of the filters, for tests and quick CPU runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from cenn.model.registry import register_model

PAPER_ENCODER_FILTERS = (8, 16, 64, 128, 256, 512)
PAPER_ENCODER_KERNELS = (9, 9, 7, 7, 5, 3)
PAPER_DECODER_FILTERS = (256, 128, 64, 16, 8, 1)
PAPER_DECODER_KERNELS = (3, 5, 7, 7, 9, 9)
OUTPUT_ACTIVATIONS = ("leaky_relu", "identity")


class CENN(nn.Module):
    """Encoder of stride-2 convolutions, decoder of stride-2 transposed convolutions ('same' padding).

    Every layer is followed by LeakyReLU (the output layer by ``output_activation``). The input of
    decoder layer ``i + 1`` is decoder layer ``i``'s activated output concatenated (channels) with the
    pre-activation output of the encoder layer of the same resolution.

    Input ``(B, in_channels, H, W)`` with ``H`` and ``W`` multiples of ``2**depth`` (64 for the paper's
    six layers); output ``(B, decoder_filters[-1], H, W)``, i.e. ``(B, 1, H, W)`` by default. Units are
    those of the normalised network space (see :mod:`cenn.data.normalization`). ``out_channels``, when
    given, replaces the last decoder filter count (2: the CMB's Q and U from a polarization network's
    ``2 C`` inputs, :mod:`cenn.data.stokes`).

    Weights are initialised as Keras does by default: Glorot-uniform kernels, zero biases.
    """

    def __init__(
        self,
        in_channels: int = 3,
        encoder_filters: Sequence[int] = PAPER_ENCODER_FILTERS,
        encoder_kernels: Sequence[int] = PAPER_ENCODER_KERNELS,
        decoder_filters: Sequence[int] = PAPER_DECODER_FILTERS,
        decoder_kernels: Sequence[int] = PAPER_DECODER_KERNELS,
        negative_slope: float = 0.2,
        output_activation: str = "leaky_relu",
        out_channels: int | None = None,
    ):
        super().__init__()
        if out_channels is not None:
            decoder_filters = (*decoder_filters[:-1], int(out_channels))
        depth = len(encoder_filters)
        if not len(encoder_kernels) == len(decoder_filters) == len(decoder_kernels) == depth:
            raise ValueError("encoder_filters, encoder_kernels, decoder_filters and decoder_kernels "
                             "must all have one entry per layer")
        if any(k % 2 == 0 for k in (*encoder_kernels, *decoder_kernels)):
            raise ValueError("kernel sizes must be odd for 'same' padding to halve/double the size exactly")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"unknown output_activation {output_activation!r}; "
                             f"choose one of {', '.join(OUTPUT_ACTIVATIONS)}")
        self.in_channels = in_channels
        self.multiple = 2**depth

        encoder_in = (in_channels, *encoder_filters[:-1])
        self.encoder = nn.ModuleList(
            nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2)
            for c_in, c_out, k in zip(encoder_in, encoder_filters, encoder_kernels, strict=True)
        )
        skip_channels = encoder_filters[-2::-1]  # encoder outputs from the deepest but one upwards
        decoder_in = (encoder_filters[-1],
                      *(d + s for d, s in zip(decoder_filters[:-1], skip_channels, strict=True)))
        self.decoder = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)
            for c_in, c_out, k in zip(decoder_in, decoder_filters, decoder_kernels, strict=True)
        )
        self.activation = nn.LeakyReLU(negative_slope)
        self.output_activation = self.activation if output_activation == "leaky_relu" else nn.Identity()
        self._init_keras()

    def _init_keras(self) -> None:
        for layer in (*self.encoder, *self.decoder):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CENN expects input of shape (B, {self.in_channels}, H, W); "
                             f"got {tuple(x.shape)}")
        if x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(
                f"CENN needs H and W divisible by {self.multiple} (one halving per encoder layer); got "
                f"input of shape {tuple(x.shape)}: crop or pad the patches to a multiple of {self.multiple} "
                "pixels (e.g. 256×256)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, decoder_filters[-1], H, W)``, both in network (normalised)
        units."""
        self._check_input(x)
        skips = []
        for conv in self.encoder:
            x = conv(x)
            skips.append(x)
            x = self.activation(x)
        for deconv, skip in zip(self.decoder[:-1], reversed(skips[:-1]), strict=True):
            x = torch.cat([self.activation(deconv(x)), skip], dim=1)
        return self.output_activation(self.decoder[-1](x))


register_model("cenn-paper")(CENN)
register_model("cenn-small")(
    partial(
        CENN,
        encoder_filters=tuple(f // 4 for f in PAPER_ENCODER_FILTERS),
        decoder_filters=(*(f // 4 for f in PAPER_DECODER_FILTERS[:-1]), 1),
    )
)
