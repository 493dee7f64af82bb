"""Riemannian metrics as Equinox modules."""

from ._base import AbstractMetric as AbstractMetric, Reparametrized as Reparametrized
from ._concrete import (
    Diagonal as Diagonal,
    Euclidean as Euclidean,
    FromFunction as FromFunction,
    Pullback as Pullback,
)
