"""The MultilayerNMF estimator (placeholder until its issue lands)."""

from ._base import PartBase


class MultilayerNMF(PartBase):
    """MultilayerNMF (not implemented yet).

    Examples
    --------
    >>> from skpart import MultilayerNMF
    >>> MultilayerNMF.__name__
    'MultilayerNMF'
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Not implemented yet."""
        raise NotImplementedError("MultilayerNMF is not implemented yet.")
