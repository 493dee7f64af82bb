"""Charts: reparametrizations `theta -> psi` as Equinox modules."""

from ._base import (
    AbstractChart as AbstractChart,
    Compose as Compose,
    Inverse as Inverse,
)
from ._curvilinear import Polar as Polar, Spherical as Spherical
from ._elementary import (
    Affine as Affine,
    Elementwise as Elementwise,
    FromFunctions as FromFunctions,
    Identity as Identity,
    Scale as Scale,
)
