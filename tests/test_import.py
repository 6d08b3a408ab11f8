"""Tests of importing skpart: the package loads in every interpreter mode."""

import subprocess
import sys

import pytest


@pytest.mark.slow  # a fresh interpreter compiles torch's modules without docstrings
def test_import_without_docstrings():
    # ``python -OO`` strips the docstrings: the estimators' shared parameter
    # texts must not be filled into a docstring that is None.
    result = subprocess.run(
        [sys.executable, "-OO", "-c", "import skpart"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_shared_parameter_texts_are_filled_in():
    from skpart import MultilayerNMF, NonnegativeSparseAutoencoder, SparseNMF

    for cls in (SparseNMF, MultilayerNMF, NonnegativeSparseAutoencoder):
        assert "{device}" not in cls.__doc__
        assert "{random_state}" not in cls.__doc__
        assert "Seeds a local ``torch.Generator``" in cls.__doc__
