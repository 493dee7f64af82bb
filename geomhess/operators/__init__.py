"""The operators: pure functions of `(what, geometry, point, ...)`.

One module per topic: `_hessian` (covariant Hessian and HVP, Riemannian gradient,
shape operator), `_invariants` (spectra, critical points), `_newton` (the invariant
Newton step), `_geodesic` (exponential map, second-order retraction), `_curvature`
(Riemann, Ricci, scalar) and `_graph` (curvatures of a loss graph). They stand on
charts, fields, metrics and connections, and everything above (manifolds,
estimators, optimizers) stands on them. Every name is also re-exported by `geomhess`.
"""

from ._curvature import (
    ricci_tensor as ricci_tensor,
    riemann_tensor as riemann_tensor,
    scalar_curvature as scalar_curvature,
)
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
