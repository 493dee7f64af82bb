"""The public API contract: names from DESIGN.md, abstract-or-final modules, docstrings."""

import inspect

import equinox as eqx
import pytest

import geomhess as gh


OPERATORS = [
    "covariant_hessian",
    "covariant_hvp",
    "riemannian_gradient",
    "shape_operator",
    "hessian_invariants",
    "newton_step",
    "exp_map",
    "classify_critical_point",
    "graph_curvatures",
    "riemann_tensor",
    "ricci_tensor",
    "scalar_curvature",
]
OBJECTS = [
    "ScalarField",
    "LeviCivita",
    "AbstractChart",
    "AbstractMetric",
    "AbstractConnection",
    "AbstractManifold",
]
SUBMODULE_NAMES = {
    "charts": [
        "Identity",
        "Affine",
        "Polar",
        "Spherical",
        "Elementwise",
        "Compose",
        "FromFunctions",
    ],
    "metrics": ["Euclidean", "FromFunction"],
    "connections": ["Flat", "LeviCivita"],
}


@pytest.mark.parametrize("name", OPERATORS + OBJECTS)
def test_top_level_names_exist_and_are_documented(name):
    obj = getattr(gh, name)
    assert inspect.getdoc(obj), f"geomhess.{name} has no docstring"


@pytest.mark.parametrize(
    "module, name", [(m, n) for m, names in SUBMODULE_NAMES.items() for n in names]
)
def test_submodule_names(module, name):
    assert inspect.getdoc(getattr(getattr(gh, module), name))


def _public_modules():
    for module in (gh, gh.charts, gh.metrics, gh.connections, gh.manifolds):
        for name in dir(module):
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, eqx.Module)
                and not name.startswith("_")
            ):
                if obj.__module__.startswith("geomhess"):
                    yield obj


def test_every_public_module_is_abstract_or_final():
    # equinox no longer enforces the abstract/final pattern, so we check it here: a
    # concrete (non-Abstract) class may not be subclassed by another public class, and
    # no concrete method of an abstract base may be overridden.
    classes = set(_public_modules())
    for cls in classes:
        for base in cls.__mro__[1:]:
            if base in classes:
                assert base.__name__.startswith("Abstract"), (
                    f"{cls.__name__} subclasses the concrete {base.__name__}"
                )
                for attr, value in vars(base).items():
                    if attr.startswith("_") or not callable(value):
                        continue
                    if getattr(value, "__isabstractmethod__", False):
                        continue
                    overridden = vars(cls).get(attr)
                    assert overridden is None or overridden is value, (
                        f"{cls.__name__}.{attr} overrides the concrete "
                        f"{base.__name__}.{attr}"
                    )


def test_abstract_classes_cannot_be_instantiated():
    for cls in (gh.AbstractChart, gh.AbstractMetric, gh.AbstractConnection):
        with pytest.raises(TypeError):
            cls()
