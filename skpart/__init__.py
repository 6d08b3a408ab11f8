"""skpart: part-based representations with the scikit-learn API on a PyTorch core."""

from ._estimators import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

__version__ = "0.1.0.dev0"

__all__ = [
    "MultilayerNMF",
    "NonnegativeSparseAutoencoder",
    "SparseNMF",
    "__version__",
]
