"""Taylor-remainder slope checks of gradients, Hessians and retractions.

As Manopt's `checkgradient`/`checkhessian`/`checkretraction` and pymanopt's
`tools.diagnostics`: along a curve $t \\mapsto R_x(t u)$ with a random unit tangent
`u`, the remainder of a correct first-order model decays as $t^2$ and of a correct
second-order model as $t^3$. The slope of $\\log E(t)$ against $\\log t$ is fitted
on the window of step sizes where the remainder is above rounding and the fit is
straightest. A slope of 1 (resp. 2) reveals a wrong gradient (resp. Hessian).

These are eager debugging tools: they run outside `jit`, return numpy data, and draw
an optional matplotlib figure (matplotlib is imported only then; it is not a
dependency of geomhess).

Also the invariant sharpness of a loss during training:
[`sharpness`][geomhess.diagnostics.sharpness] at one point, and
[`sharpness_monitor`][geomhess.diagnostics.sharpness_monitor], an optax
transformation that logs it every `k` steps.
"""

from ._sharpness import (
    Sharpness as Sharpness,
    SharpnessState as SharpnessState,
    sharpness as sharpness,
    sharpness_monitor as sharpness_monitor,
)
from ._slope import (
    SlopeCheck as SlopeCheck,
    check_gradient as check_gradient,
    check_hessian as check_hessian,
    check_retraction as check_retraction,
)
