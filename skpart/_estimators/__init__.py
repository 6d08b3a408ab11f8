"""scikit-learn estimators of skpart: thin wrappers over the torch core."""

from ._autoencoder import NonnegativeSparseAutoencoder
from ._multilayer_nmf import MultilayerNMF
from ._sparse_nmf import SparseNMF

__all__ = ["MultilayerNMF", "NonnegativeSparseAutoencoder", "SparseNMF"]
