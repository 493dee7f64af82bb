"""Riemannian metrics as Equinox modules."""

from ._base import AbstractMetric as AbstractMetric, Reparametrized as Reparametrized
from ._concrete import (
    Diagonal as Diagonal,
    Euclidean as Euclidean,
    FromFunction as FromFunction,
    Pullback as Pullback,
)
from ._model import (
    AbstractModelMetric as AbstractModelMetric,
    Fisher as Fisher,
    GaussNewton as GaussNewton,
    PerLayer as PerLayer,
    softmax_cross_entropy_curvature as softmax_cross_entropy_curvature,
    squared_error_curvature as squared_error_curvature,
)
