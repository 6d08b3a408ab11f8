"""Data set loaders: MNIST and Fashion-MNIST from their canonical IDX files."""

from ._mnist import get_data_home, load_mnist

__all__ = ["get_data_home", "load_mnist"]
