"""The SparseNMF estimator (placeholder until its issue lands)."""

from ._base import PartBase


class SparseNMF(PartBase):
    """SparseNMF (not implemented yet).

    Examples
    --------
    >>> from skpart import SparseNMF
    >>> SparseNMF.__name__
    'SparseNMF'
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Not implemented yet."""
        raise NotImplementedError("SparseNMF is not implemented yet.")
