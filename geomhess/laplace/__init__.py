"""The Laplace approximation of the log evidence, in a chart-invariant form.

[`log_evidence`][geomhess.laplace.log_evidence] takes the prior as a density with
respect to the Riemannian volume of a metric and the log-determinant of the shape
operator of the negative log joint (a (1,1) tensor), so it is the same number in every
chart; [`naive_log_evidence`][geomhess.laplace.naive_log_evidence] is the usual
Euclidean formula, which moves by `log |det J|` under a linear change of parameters.
"""

from ._evidence import (
    Evidence as Evidence,
    gaussian_log_prior as gaussian_log_prior,
    log_evidence as log_evidence,
    naive_log_evidence as naive_log_evidence,
)
