"""Optimization on manifolds, on optax: Riemannian wrappers, Riemannian SGD and Adam
with vector transport, the invariant Newton method and Riemannian trust regions.

Every transform is an `optax.GradientTransformationExtraArgs` whose `init`/`update`
are bound methods of an Equinox module, so the optimizer is a pytree (a new learning
rate does not recompile) and its state is a NamedTuple that checkpoints with
`equinox.tree_serialise_leaves`. `update` returns `x' - x`, so
`optax.apply_updates(params, updates)` lands on the manifold (up to rounding). A
geomhess transform must come **last** in an `optax.chain`: Euclidean preprocessing such
as `optax.clip_by_global_norm` goes before it.
"""

from ._first_order import (
    RAdamState as RAdamState,
    RSGDState as RSGDState,
    radam as radam,
    rsgd as rsgd,
)
from ._hessian_free import (
    HessianFreeState as HessianFreeState,
    hessian_free as hessian_free,
)
from ._newton import NewtonState as NewtonState, newton as newton
from ._riemannian import RiemannianState as RiemannianState, riemannian as riemannian
from ._trust_region import (
    TrustRegionState as TrustRegionState,
    trust_region as trust_region,
)
