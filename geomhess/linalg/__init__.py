"""Linear algebra with the metric: dense solves for small `d`, matrix-free Krylov solves
and the symmetric generalized eigenproblem."""

from ._eigen import generalized_eigvalsh as generalized_eigvalsh
from ._solve import (
    cg_solve as cg_solve,
    spd_solve as spd_solve,
    symmetric_solve as symmetric_solve,
)
