"""geomhess: invariant curvature of loss landscapes, in JAX.

The calculus Hessian's eigenvalues, trace, determinant and Newton steps change under
reparametrization; the covariant Hessian (with the connection) and the shape operator
(with the metric) do not. geomhess makes the invariant quantities as easy to compute
as the naive ones, dense for small problems and matrix-free on pytrees.
"""

from . import (
    charts as charts,
    connections as connections,
    diagnostics as diagnostics,
    linalg as linalg,
    manifolds as manifolds,
    metrics as metrics,
    optim as optim,
)
from ._curvature import (
    ricci_tensor as ricci_tensor,
    riemann_tensor as riemann_tensor,
    scalar_curvature as scalar_curvature,
)
from ._field import ScalarField as ScalarField
from ._geodesic import (
    exp_map as exp_map,
    second_order_retraction as second_order_retraction,
)
from ._graph import (
    GraphCurvatures as GraphCurvatures,
    graph_curvatures as graph_curvatures,
)
from ._hessian import (
    covariant_hessian as covariant_hessian,
    covariant_hvp as covariant_hvp,
    riemannian_gradient as riemannian_gradient,
    shape_operator as shape_operator,
)
from ._invariants import (
    CriticalPoint as CriticalPoint,
    CriticalPointKind as CriticalPointKind,
    HessianInvariants as HessianInvariants,
    classify_critical_point as classify_critical_point,
    hessian_invariants as hessian_invariants,
)
from ._newton import newton_step as newton_step
from .charts import AbstractChart as AbstractChart
from .connections import (
    AbstractConnection as AbstractConnection,
    LeviCivita as LeviCivita,
)
from .manifolds import AbstractManifold as AbstractManifold
from .metrics import AbstractMetric as AbstractMetric


__version__ = "0.1.0"
