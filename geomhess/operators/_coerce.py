"""How operators accept their geometry argument."""

from ..connections import AbstractConnection, LeviCivita
from ..metrics import AbstractMetric


def as_connection(caller: str, geometry) -> AbstractConnection:
    """A connection given as itself, or a metric standing for its Levi-Civita one."""
    if isinstance(geometry, AbstractConnection):
        return geometry
    if isinstance(geometry, AbstractMetric):
        return LeviCivita(geometry)
    raise TypeError(
        f"`{caller}`: expected a connection (e.g. `gh.LeviCivita(metric)`, "
        f"`gh.connections.Flat()`) or a metric, got {type(geometry).__name__}."
    )


def as_metric(caller: str, geometry) -> AbstractMetric:
    """A metric given as itself, or the metric of a Levi-Civita connection."""
    if isinstance(geometry, AbstractMetric):
        return geometry
    if isinstance(geometry, LeviCivita):
        return geometry.metric
    raise TypeError(
        f"`{caller}`: expected a metric (e.g. `gh.metrics.Euclidean(d)`) or a "
        f"Levi-Civita connection, got {type(geometry).__name__}."
    )
