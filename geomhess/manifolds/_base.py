"""The abstract manifold, the embedded-submanifold recipe, and shared helpers."""

import abc

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu

from .._core.checks import membership_tol, require_small
from .._core.tree import tree_vdot, tree_zeros_like
from ._functions import safe_sqrt


class AbstractManifold(eqx.Module):
    """A Riemannian manifold: points, tangent spaces, a metric and ways to move.

    Every method takes the point first (`manifold.inner(x, u, v)`). Points and
    tangent vectors are arrays (or, for [`Product`][geomhess.manifolds.Product] and
    [`Coordinate`][geomhess.manifolds.Coordinate] with a matrix-free metric, pytrees)
    whose dtype is kept: float32 in, float32 out. Every method works under `jit`,
    `vmap` and `grad`.

    Tangent vectors are stored in the representation of the concrete manifold (the
    ambient coordinates of an embedded manifold, coordinates for a coordinate
    manifold, horizontal lifts for a quotient). A Euclidean gradient (`egrad`) is
    the gradient of a smooth extension of the cost to that representation, as
    `jax.grad` returns it.

    Subclasses implement the abstract methods; `norm`, `retract_transport` and
    `zero_tangent` are concrete and never overridden (equinox's abstract/final
    pattern).
    """

    @abc.abstractmethod
    def inner(self, x, u, v):
        """The Riemannian inner product $\\langle u, v\\rangle_x$, a scalar."""

    @abc.abstractmethod
    def to_tangent(self, x, v):
        """Orthogonal projection of an ambient vector onto $T_x M$ (identity for open
        sets)."""

    @abc.abstractmethod
    def to_manifold(self, x):
        """Re-projection of a (slightly off) point onto the manifold, against drift."""

    @abc.abstractmethod
    def egrad_to_rgrad(self, x, egrad):
        """The Riemannian gradient $\\operatorname{grad} f(x)$ from the Euclidean
        gradient `egrad` of (an extension of) `f`."""

    @abc.abstractmethod
    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        """The Riemannian Hessian applied to `v`, $\\operatorname{Hess} f(x)[v]$, from
        the Euclidean gradient `egrad` and Euclidean Hessian-vector product
        `ehvp` $= \\nabla^2 \\bar f(x) v$."""

    @abc.abstractmethod
    def retract(self, x, v):
        """A retraction $R_x(v)$: a point, agreeing with `exp` to (at least) first
        order."""

    @abc.abstractmethod
    def exp(self, x, v):
        """The Riemannian exponential map $\\exp_x(v)$."""

    @abc.abstractmethod
    def log(self, x, y):
        """The Riemannian logarithm $\\log_x(y)$, the tangent vector with
        $\\exp_x(\\log_x y) = y$ (closed form, or `NotImplementedError`)."""

    @abc.abstractmethod
    def transport(self, x, y, v):
        """A vector transport of `v` from $T_x M$ to $T_y M$."""

    @abc.abstractmethod
    def dist(self, x, y):
        """The geodesic distance $d(x, y)$ (closed form, or `NotImplementedError`)."""

    @abc.abstractmethod
    def random_point(self, key, *, dtype=None):
        """A random point. `dtype=None` means JAX's default float dtype (float64 with
        x64 enabled, float32 otherwise)."""

    @abc.abstractmethod
    def random_tangent(self, key, x):
        """A random tangent vector at `x` (a standard normal ambient vector projected
        onto $T_x M$), with the dtype of `x`."""

    def norm(self, x, v):
        """The Riemannian norm $\\lVert v\\rVert_x = \\sqrt{\\langle v, v\\rangle_x}$
        (derivative 0, not NaN, at $v = 0$)."""
        return safe_sqrt(self.inner(x, v, v))

    def retract_transport(self, x, v, u):
        """Retract and transport in one call, as optimizers with momentum need.

        Args:
            x: the point.
            v: the step, a tangent vector at `x`.
            u: the vector to carry along (e.g. a momentum), tangent at `x`.

        Returns:
            `(y, u_y)` with `y = retract(x, v)` and `u_y = transport(x, y, u)`.
        """
        y = self.retract(x, v)
        return y, self.transport(x, y, u)

    def zero_tangent(self, x):
        """The zero tangent vector at `x`."""
        return tree_zeros_like(x)

    # Membership checks. A manifold that can tell how far a point is from it (and a
    # vector from its tangent space) overrides `_point_defect`/`_tangent_defect` with
    # a dimensionless scalar, 0 on the manifold; the maps that move or measure
    # (`exp`, `retract`, `transport`, `log`, `dist`) then check their inputs. The
    # inner product and the projections are not checked: solvers call them in loops.
    _what = "the manifold"
    _point_hint = "membership defect"

    def _point_defect(self, x):
        return None

    def _tangent_defect(self, x, v):
        return None

    def _checked_point(self, caller: str, x, name: str = "x"):
        defect = self._point_defect(x)
        if defect is None:
            return x
        tol = membership_tol(jnp.result_type(x))
        return require_small(
            x,
            defect,
            f"`{type(self).__name__}.{caller}`: the point `{name}` is not on {self._what} "
            f"({self._point_hint}, to {tol:.1e}), or it holds NaN or inf. Project it "
            f"with `manifold.to_manifold({name})`; `GEOMHESS_CHECKS=0` skips this "
            "check.",
        )

    def _checked_tangent(self, caller: str, x, v, name: str = "v"):
        defect = self._tangent_defect(x, v)
        if defect is None:
            return v
        tol = membership_tol(jnp.result_type(v))
        return require_small(
            v,
            defect,
            f"`{type(self).__name__}.{caller}`: the vector `{name}` is not tangent "
            f"at `x` (its normal part above {tol:.1e} relative to the larger of "
            "its size and the point's), or it holds NaN or inf. Project it with "
            f"`manifold.to_tangent(x, {name})`; `GEOMHESS_CHECKS=0` skips this check.",
        )


class AbstractEmbeddedManifold(AbstractManifold):
    """A Riemannian submanifold of a Euclidean space (metric induced by the ambient
    dot product).

    Implements the generic recipe of pymanopt's `RiemannianSubmanifold`[^absil]:

    - `inner(x, u, v)` $= \\langle u, v \\rangle$, the ambient dot product;
    - `egrad_to_rgrad(x, g)` $= P_x g$ (`to_tangent`);
    - `ehvp_to_rhvp(x, g, h, v)` $= P_x h + W_x(v, n)$ with $n = g - P_x g$ the
      normal part of the gradient and $W$ the Weingarten map (`weingarten`).

    Subclasses implement `weingarten_operator(x, n)`, which returns `v -> w`: an
    ambient vector whose tangent part is the Weingarten map, $W_x(v, n) = P_x w$ (the
    derivative of the projection along $v$ applied to $n$, $(D_v P_x)\\, n$, is one).
    Then $\\operatorname{Hess} f(x)[v] = P_x(h + w)$ costs one projection, and
    `hessian_operator(x, g)` computes what depends on `x` and `g` alone once, for
    solvers that apply the Hessian to many `v`.

    [^absil]: Absil, Mahony, Trumpf, *An extrinsic look at the Riemannian Hessian*,
        GSI 2013, Theorem 1.
    """

    @abc.abstractmethod
    def weingarten_operator(self, x, normal):
        """`v -> w` for a normal vector `n` at `x`: `w` is an ambient vector whose
        tangent part is the Weingarten map $W_x(v, n)$ of a tangent `v`. What depends
        on `x` and `n` alone is computed here, once."""

    def weingarten(self, x, v, normal):
        """The Weingarten map $W_x(v, n)$: a tangent vector at `x`."""
        return self.to_tangent(x, self.weingarten_operator(x, normal)(v))

    def hessian_operator(self, x, egrad):
        """`(ehvp, v) -> ehvp_to_rhvp(x, egrad, ehvp, v)`, with the normal part of
        `egrad` and the Weingarten map's precomputation done once, for a solver
        (truncated CG, Lanczos) that applies the Hessian at `x` to many `v`."""
        normal = jtu.tree_map(jnp.subtract, egrad, self.to_tangent(x, egrad))
        ambient = self.weingarten_operator(x, normal)

        def apply(ehvp, v):
            return self.to_tangent(x, jtu.tree_map(jnp.add, ehvp, ambient(v)))

        return apply

    def inner(self, x, u, v):
        return tree_vdot(u, v)

    def egrad_to_rgrad(self, x, egrad):
        return self.to_tangent(x, egrad)

    def ehvp_to_rhvp(self, x, egrad, ehvp, v):
        return self.hessian_operator(x, egrad)(ehvp, v)


def normal(key, shape, dtype=None):
    """Standard normal samples; `dtype=None` is JAX's default float dtype."""
    if dtype is None:
        return jr.normal(key, shape)
    return jr.normal(key, shape, dtype=dtype)


def check_shape(caller: str, name: str, value, shape: tuple[int, ...]):
    """Raise a `ValueError` naming the call when `value`'s shape is not `shape`."""
    actual = tuple(jnp.shape(value))
    if actual != tuple(shape):
        raise ValueError(
            f"`{caller}`: `{name}` has shape {actual}, expected {tuple(shape)}."
        )
    if not jnp.issubdtype(jnp.result_type(value), jnp.floating):
        raise ValueError(
            f"`{caller}`: `{name}` must be floating point, got dtype "
            f"{jnp.result_type(value)}."
        )


def relative(defect, scale, floor):
    """`defect / max(scale, floor)`: a vector's normal part relative to its size,
    but never to less than the point's own scale `floor`. Near a critical point a
    momentum or a step is a small difference of large terms, whose rounding leaves
    a normal part small against the point but not against the vector itself."""
    return defect / jnp.maximum(scale, floor)


def sym(A):
    """The symmetric part $(A + A^\\top)/2$ of a (batch of) square matrices."""
    return 0.5 * (A + jnp.swapaxes(A, -1, -2))
