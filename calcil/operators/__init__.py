"""Operator algebra and the operator catalogue; every public name is flat in ``cc.operators``.

Core operators live beside the algebra (``base``, ``fourier``, ``convolution``, ``sampling``,
``elementwise``, ``differences``, ``interpolation``, ``stack``); imaging modalities in subpackages
(``optics``, ``tomography``).
"""

from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator, Operator, UnitaryFactorization
from calcil.operators.convolution import Convolve
from calcil.operators.differences import DifferenceGram, FiniteDifference
from calcil.operators.elementwise import Diagonal, Exp, Identity, Intensity
from calcil.operators.fourier import FFT
from calcil.operators.functions import from_function
from calcil.operators.interpolation import Interpolate, Shift
from calcil.operators.optics import (
    AngularSpectrum,
    FourierPtychography,
    Fraunhofer,
    Fresnel,
    IncoherentImaging,
    MultiSlice,
    PartiallyCoherent,
    Ptychography,
    Pupil,
    led_array,
    noll_to_nm,
    source_points,
    zernike,
)
from calcil.operators.sampling import Bin, Crop, Gather, Mask, Pad, Subsample
from calcil.operators.stack import BlockDiagonal, Stack
from calcil.operators.structure import AppliedOperator, applied_operator
from calcil.operators.tomography import (
    ConeBeamProjection,
    FanBeamProjection,
    ParallelProjection,
)
from calcil.operators.wavelets import Wavelet

__all__ = [
    "FFT",
    "AngularSpectrum",
    "AppliedOperator",
    "Bin",
    "BlockDiagonal",
    "ConeBeamProjection",
    "Convolve",
    "Crop",
    "Diagonal",
    "DifferenceGram",
    "Exp",
    "FanBeamProjection",
    "FiniteDifference",
    "FourierPtychography",
    "Fraunhofer",
    "Fresnel",
    "Gather",
    "Identity",
    "IncoherentImaging",
    "Intensity",
    "Interpolate",
    "LinearOperator",
    "Mask",
    "MultiSlice",
    "Operator",
    "Pad",
    "ParallelProjection",
    "PartiallyCoherent",
    "Ptychography",
    "Pupil",
    "Shift",
    "Stack",
    "Subsample",
    "UnitaryFactorization",
    "Wavelet",
    "applied_operator",
    "from_function",
    "led_array",
    "noll_to_nm",
    "source_points",
    "static_field",
    "zernike",
]
