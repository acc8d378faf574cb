"""The CMB component with its lensed spectrum and the modes larger than the patch."""
