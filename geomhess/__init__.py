"""geomhess: invariant curvature of loss landscapes, in JAX.

The calculus Hessian's eigenvalues, trace, determinant and Newton steps change under
reparametrization; the covariant Hessian (with the connection) and the shape operator
(with the metric) do not. geomhess makes the invariant quantities as easy to compute
as the naive ones, dense for small problems and matrix-free on pytrees.
"""

from . import charts as charts, connections as connections, linalg as linalg
from . import metrics as metrics
from ._curvature import (
    ricci_tensor as ricci_tensor,
    riemann_tensor as riemann_tensor,
    scalar_curvature as scalar_curvature,
)
from ._field import ScalarField as ScalarField
from ._geodesic import exp_map as exp_map
from ._graph import GraphCurvatures as GraphCurvatures, graph_curvatures as graph_curvatures
from ._hessian import (
    covariant_hessian as covariant_hessian,
    covariant_hvp as covariant_hvp,
    riemannian_gradient as riemannian_gradient,
    shape_operator as shape_operator,
)
from ._invariants import (
    classify_critical_point as classify_critical_point,
    CriticalPoint as CriticalPoint,
    CriticalPointKind as CriticalPointKind,
    hessian_invariants as hessian_invariants,
    HessianInvariants as HessianInvariants,
)
from ._newton import newton_step as newton_step
from .charts import AbstractChart as AbstractChart
from .connections import AbstractConnection as AbstractConnection, LeviCivita as LeviCivita
from .metrics import AbstractMetric as AbstractMetric


__version__ = "0.1.0"
