"""Scalar fields: functions on the manifold, stored in some coordinates."""

from ._scalar_field import ScalarField as ScalarField
