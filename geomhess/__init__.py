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
    fields as fields,
    laplace as laplace,
    linalg as linalg,
    manifolds as manifolds,
    metrics as metrics,
    operators as operators,
    optim as optim,
)
from .charts import AbstractChart as AbstractChart
from .connections import (
    AbstractConnection as AbstractConnection,
    LeviCivita as LeviCivita,
)
from .fields import ScalarField as ScalarField
from .manifolds import AbstractManifold as AbstractManifold
from .metrics import AbstractMetric as AbstractMetric
from .operators import (
    CriticalPoint as CriticalPoint,
    CriticalPointKind as CriticalPointKind,
    GraphCurvatures as GraphCurvatures,
    HessianInvariants as HessianInvariants,
    classify_critical_point as classify_critical_point,
    covariant_hessian as covariant_hessian,
    covariant_hvp as covariant_hvp,
    exp_map as exp_map,
    graph_curvatures as graph_curvatures,
    hessian_invariants as hessian_invariants,
    newton_step as newton_step,
    ricci_tensor as ricci_tensor,
    riemann_tensor as riemann_tensor,
    riemannian_gradient as riemannian_gradient,
    scalar_curvature as scalar_curvature,
    second_order_retraction as second_order_retraction,
    shape_operator as shape_operator,
)


__version__ = "0.1.0"
