"""The bottom layer: input checks, pytree arithmetic and the bare linear algebra.

Nothing here knows about charts, metrics or connections: `checks` raises clear errors
(inside `jit` too), `tree` does arithmetic on pytrees, and `solve`, `lanczos` and
`eigen` are the dense and Krylov solvers every geometric layer above is built from.
Private: the public names are re-exported by `geomhess.linalg`.
"""
