"""Regenerate the shipped Planck 2018 CMB spectra (lensed TT, EE, BB, TE; tensor BB for r = 1) with
CAMB (needs `pip install camb`)."""

from importlib import resources

from cenn.sky.components.cmb.spectrum import (
    PLANCK2018_BESTFIT,
    SHIPPED_FILE,
    compute_spectra,
    write_spectra,
)

if __name__ == "__main__":
    target = resources.files("cenn.sky") / "data" / "cmb" / SHIPPED_FILE
    write_spectra(target, compute_spectra(PLANCK2018_BESTFIT), PLANCK2018_BESTFIT)
    print(f"wrote {target}")
