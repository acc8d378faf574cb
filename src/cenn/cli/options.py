"""Options that several ``cenn`` commands share, declared once here."""

from __future__ import annotations

import argparse

from cenn.runtime import DEFAULT_PRECISION, PRECISIONS


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
               help: str = "cpu or cuda") -> None:
    """``--device`` (default cpu)."""
    parser.add_argument("--device", default="cpu", help=help)


def add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision`` of the network methods."""
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="auto (default: bf16 on a CPU with AVX-512 BF16 or AMX, else 32), 32 (float32) "
                             "or bf16 (bfloat16 autocast); the output is float32 either way")


def add_no_progress(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--no-progress``: no progress bars."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _methods() -> str:
    from cenn.separators import available_separators

    return ", ".join(available_separators())


def _demo_methods() -> str:
    from cenn.demo import METHODS

    return ",".join(METHODS)


def _steps() -> str:
    from cenn.experiment import STEPS

    return ",".join(STEPS)


#: Fields of help strings that only a command's own modules can fill, and how.
LATE_FIELDS = {"{methods}": _methods, "{demo_methods}": _demo_methods, "{steps}": _steps}


class LateHelp(argparse.HelpFormatter):
    """Fills the fields of :data:`LATE_FIELDS` in help strings when the help is printed, so that
    building the parser imports none of the modules that know their values."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        for name, value in LATE_FIELDS.items():
            if text and name in text:
                text = text.replace(name, value())
        return text
