"""A tiny package for coverage comparisons (xdist --cov vs pytest --cov)."""

from .calc import add, divide, mean

__all__ = ["add", "divide", "mean"]
