"""Flat-sky patches: the pixel and Fourier grid, projections to and from the sphere, cut-outs from
HEALPix maps, and power spectra on the flat grid."""
