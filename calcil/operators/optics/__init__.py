"""Optics operators: propagation, pupils, incoherent and partially coherent imaging,
multi-slice scattering, Fourier and scanning ptychography (public in cc.operators)."""

from calcil.operators.optics.fourier_ptychography import FourierPtychography, led_array
from calcil.operators.optics.fraunhofer import Fraunhofer
from calcil.operators.optics.incoherent import IncoherentImaging
from calcil.operators.optics.multislice import MultiSlice
from calcil.operators.optics.partial import PartiallyCoherent, source_points
from calcil.operators.optics.propagation import AngularSpectrum, Fresnel
from calcil.operators.optics.ptychography import Ptychography
from calcil.operators.optics.pupil import Pupil, noll_to_nm, zernike

__all__ = [
    "AngularSpectrum",
    "FourierPtychography",
    "Fraunhofer",
    "Fresnel",
    "IncoherentImaging",
    "MultiSlice",
    "PartiallyCoherent",
    "Ptychography",
    "Pupil",
    "led_array",
    "noll_to_nm",
    "source_points",
    "zernike",
]
