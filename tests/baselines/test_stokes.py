"""Classical baselines on Stokes Q and U (``Separator.separate_polarization``): a Stokes-agnostic
method gives on (N, 2, C, H, W) exactly what it gives on the Q maps and on the U maps apart, with
the Q/U noise levels (√2 × the temperature's); the others refuse."""

import math

import pytest
import torch

from cenn.separation import Separator
from cenn.separators import InputInfo, build_separator

INFO = InputInfo(frequencies_ghz=(143.0, 217.0, 353.0), band_names=("143", "217", "353"),
                 beam_fwhm_arcmin=(7.22, 4.90, 4.92), target_band="217", target_beam_fwhm_arcmin=4.90,
                 pixel_arcsec=90.0, noise_uk_per_pixel=(22.0, 30.0, 100.0))


@pytest.fixture(scope="module")
def polarization():
    g = torch.Generator().manual_seed(3)
    return 10.0 * torch.randn((3, 2, 3, 32, 32), generator=g)  # µK: 3 patches, Q and U, 3 bands


@pytest.mark.parametrize("name", ["ilc", "hilc", "nilc", "target-band"])
def test_q_and_u_are_separated_as_two_sets_of_maps(name, polarization):
    sep = build_separator(name)
    both = sep.separate_polarization(polarization, INFO)
    assert both.shape == (3, 2, 32, 32) and both.dtype == torch.float32
    for s in range(2):
        alone = sep.separate(polarization[:, s], INFO)[:, 0]
        torch.testing.assert_close(both[:, s], alone, rtol=0, atol=1e-5)


class _Levels(Separator):
    """Records the noise levels and σ it is given; returns the 217 GHz map."""

    name, stokes_agnostic = "levels", True

    def separate(self, inputs, info, noise_sigma=None):
        self.levels, self.sigma = info.noise_uk_per_pixel, noise_sigma
        return inputs[:, 1:2]


def test_q_and_u_noise_is_root_two_times_the_temperature_noise(polarization):
    sep = _Levels()
    sep.separate_polarization(polarization, INFO)
    assert sep.levels == pytest.approx(tuple(math.sqrt(2.0) * s for s in INFO.noise_uk_per_pixel), rel=1e-12)
    assert sep.sigma is None
    sigma = torch.arange(3.0)[None, None, :, None, None].expand(polarization.shape)
    sep.separate_polarization(polarization, INFO, sigma)
    assert sep.sigma.shape == (6, 3, 32, 32) and torch.equal(sep.sigma[:, 2], torch.full((6, 32, 32), 2.0))


@pytest.mark.parametrize("name", ["wiener"])
def test_methods_tied_to_the_temperature_refuse_q_and_u(name, polarization):
    method = build_separator(name)
    assert method.polarization_refusal() == "does not separate Q and U"  # cenn evaluate's reason
    assert build_separator("ilc").polarization_refusal() is None
    with pytest.raises(NotImplementedError, match=name):
        method.separate_polarization(polarization, INFO)
