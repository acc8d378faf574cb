"""Regenerate the shipped Planck 2018 lensed TT spectrum with CAMB (needs `pip install camb`)."""

from importlib import resources

from cenn.sky.components.cmb.spectrum import (
    PLANCK2018_BESTFIT,
    SHIPPED_FILE,
    compute_lensed_tt,
    write_spectrum,
)

if __name__ == "__main__":
    target = resources.files("cenn.sky") / "data" / "cmb" / SHIPPED_FILE
    write_spectrum(target, compute_lensed_tt(PLANCK2018_BESTFIT), PLANCK2018_BESTFIT)
    print(f"wrote {target}")
