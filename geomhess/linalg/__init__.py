"""Linear algebra with the metric: dense solves for small `d`, matrix-free Krylov solves,
the symmetric generalized eigenproblem, and the randomized and Krylov estimators of
the shape operator's trace, eigenvalues, log-determinant and spectral density.

The solvers live in the bottom layer (`geomhess._core`, used by the metrics to raise an
index); the estimators here stand on the operators (they apply the covariant HVP).
"""

from .._core.eigen import generalized_eigvalsh as generalized_eigvalsh
from .._core.solve import (
    cg_solve as cg_solve,
    spd_solve as spd_solve,
    symmetric_solve as symmetric_solve,
)
from ._estimators import (
    EigenvalueEstimate as EigenvalueEstimate,
    LogdetEstimate as LogdetEstimate,
    SpectralDensity as SpectralDensity,
    TraceEstimate as TraceEstimate,
    hessian_density as hessian_density,
    hessian_eigenvalues as hessian_eigenvalues,
    hessian_logdet as hessian_logdet,
    hessian_trace as hessian_trace,
    shape_operator_density as shape_operator_density,
    shape_operator_eigenvalues as shape_operator_eigenvalues,
    shape_operator_logdet as shape_operator_logdet,
    shape_operator_trace as shape_operator_trace,
)
