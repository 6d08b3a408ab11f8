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

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("MultilayerNMF is not implemented yet.")
