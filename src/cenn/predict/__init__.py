"""Running trained weights on maps: the :class:`Predictor` (:mod:`cenn.predict.api`), checks of the
maps' values (:mod:`~cenn.predict.values`) and units (:mod:`~cenn.predict.units`), map files in and
out (:mod:`~cenn.predict.files`) and ``cenn predict`` on patches (:mod:`~cenn.predict.command`).

Maps go in as ``(N, C, H, W)`` (or one patch ``(C, H, W)``) in µK_CMB at the weights' frequencies,
in the weights' order, and come out as the CMB ``(N, 1, H, W)`` in µK_CMB at the weights' target
band. Inputs are checked against the weights' card before anything runs, and every refusal says
what is wrong and how to fix it.
"""

from cenn.predict.api import Predictor
from cenn.predict.command import run_predict
from cenn.predict.files import SUPPORTED_FILES, read_input, write_output
from cenn.predict.units import check_channel_order, patch_spreads
from cenn.predict.values import fill_nonfinite_pixels
from cenn.runtime import PRECISIONS

__all__ = [
    "PRECISIONS",
    "SUPPORTED_FILES",
    "Predictor",
    "check_channel_order",
    "fill_nonfinite_pixels",
    "patch_spreads",
    "read_input",
    "run_predict",
    "write_output",
]
