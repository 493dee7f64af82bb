"""Affine connections: flat, Levi-Civita, and carried through a chart."""

from ._base import (
    AbstractConnection as AbstractConnection,
    Flat as Flat,
    Reparametrized as Reparametrized,
    christoffel_from_contract as christoffel_from_contract,
    contract_covector_by_vjp as contract_covector_by_vjp,
)
from ._levi_civita import LeviCivita as LeviCivita
