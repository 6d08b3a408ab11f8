"""The NonnegativeSparseAutoencoder estimator (placeholder until its issue lands)."""

from ._base import PartBase


class NonnegativeSparseAutoencoder(PartBase):
    """NonnegativeSparseAutoencoder (not implemented yet).

    Examples
    --------
    >>> from skpart import NonnegativeSparseAutoencoder
    >>> NonnegativeSparseAutoencoder.__name__
    'NonnegativeSparseAutoencoder'
    """

    def __init__(self, n_components=None):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Not implemented yet."""
        raise NotImplementedError(
            "NonnegativeSparseAutoencoder is not implemented yet."
        )
