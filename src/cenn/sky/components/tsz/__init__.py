"""The thermal Sunyaev-Zel'dovich component with its halo model: background cosmology, halo counts,
pressure profiles and the sampler that draws halos from them."""
