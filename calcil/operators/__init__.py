"""Operator algebra and the operator catalogue."""

from calcil._struct import static_field
from calcil.operators.base import LinearOperator, Operator, from_function
from calcil.operators.convolution import Convolve
from calcil.operators.differences import FiniteDifference
from calcil.operators.elementwise import Diagonal, Exp, Identity, Intensity
from calcil.operators.fourier import FFT
from calcil.operators.sampling import Bin, Crop, Gather, Mask, Pad, Subsample

__all__ = [
    "FFT",
    "Bin",
    "Convolve",
    "Crop",
    "Diagonal",
    "Exp",
    "FiniteDifference",
    "Gather",
    "Identity",
    "Intensity",
    "LinearOperator",
    "Mask",
    "Operator",
    "Pad",
    "Subsample",
    "from_function",
    "static_field",
]
