"""Point sources: the catalogue painter and the two populations drawn with it, radio sources and
infrared galaxies."""
