"""Files in and out, below every other layer: staged writes (:mod:`cenn.io.atomic`), map units
(:mod:`cenn.io.units`), FITS headers (:mod:`cenn.io.fits`), HEALPix maps
(:mod:`cenn.io.healpix_maps`) and the noise σ per pixel of Planck frequency maps
(:mod:`cenn.io.noise_maps`)."""
