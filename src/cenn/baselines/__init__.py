"""Classical component separation on the network's patches: ILC, harmonic ILC, needlet ILC, the
CMB-free needlet ILC and the (oracle) Wiener filter. Importing this package registers them as
separators (``cenn.separation``)."""

from cenn.baselines.dnilc import DifferenceNILCSeparator
from cenn.baselines.ilc import HarmonicILCSeparator, ILCSeparator
from cenn.baselines.nilc import NILCSeparator
from cenn.baselines.wiener import WienerSeparator

__all__ = ["DifferenceNILCSeparator", "HarmonicILCSeparator", "ILCSeparator", "NILCSeparator",
           "WienerSeparator"]
