"""Optics operators: propagation, pupils, incoherent imaging and multi-slice scattering (public
in cc.operators)."""

from calcil.operators.optics.fraunhofer import Fraunhofer
from calcil.operators.optics.incoherent import IncoherentImaging
from calcil.operators.optics.multislice import MultiSlice
from calcil.operators.optics.partial import PartiallyCoherent, source_points
from calcil.operators.optics.propagation import AngularSpectrum, Fresnel
from calcil.operators.optics.pupil import Pupil, noll_to_nm, zernike

__all__ = [
    "AngularSpectrum",
    "Fraunhofer",
    "Fresnel",
    "IncoherentImaging",
    "MultiSlice",
    "PartiallyCoherent",
    "Pupil",
    "noll_to_nm",
    "source_points",
    "zernike",
]
