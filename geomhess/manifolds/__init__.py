"""Manifolds: points, tangent spaces, metrics, retractions and transports.

Each manifold is an Equinox module with the methods of
[`AbstractManifold`][geomhess.manifolds.AbstractManifold] (point first:
`manifold.inner(x, u, v)`), usable under `jit`, `vmap` and `grad`, in float32 and
float64. The optimizers in `geomhess.optim` take them.
"""

from ._base import (
    AbstractEmbeddedManifold as AbstractEmbeddedManifold,
    AbstractManifold as AbstractManifold,
)
from ._coordinate import Coordinate as Coordinate
from ._euclidean import Euclidean as Euclidean
from ._hyperbolic import Hyperbolic as Hyperbolic
from ._product import Product as Product
from ._spd import SPD as SPD
from ._sphere import Sphere as Sphere
from ._stiefel import Grassmann as Grassmann, Stiefel as Stiefel
