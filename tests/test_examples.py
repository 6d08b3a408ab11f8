"""Every example runs in its quick, digits-based mode and saves its figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# The figures each example must save; a new example must be listed here.
FIGURES = {
    "quickstart.py": ["quickstart_atoms.png"],
    "plot_autoencoder_init.py": ["autoencoder_init.png"],
    "plot_autoencoder_study.py": ["autoencoder_study.png"],
    "plot_dask_fit.py": ["dask_fit.png"],
    "plot_dask_search.py": ["dask_search.png"],
    "plot_dilation.py": ["dilation.png"],
    "plot_grid_search.py": ["grid_search_tradeoff.png"],
    "plot_parts_gallery.py": [
        "parts_gallery_atoms.png",
        "parts_gallery_reconstructions.png",
    ],
    "plot_swap_sklearn_nmf.py": ["swap_sklearn_nmf.png"],
}


# Examples that need an optional package beyond matplotlib, and the extra that
# installs it.
NEEDS = {
    "plot_dask_fit.py": ("distributed", "dask"),
    "plot_dask_search.py": ("distributed", "dask"),
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(FIGURES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_example_runs(name, tmp_path):
    pytest.importorskip("matplotlib", reason="the examples need matplotlib")
    if name in NEEDS:
        module, extra = NEEDS[name]
        pytest.importorskip(
            module, reason=f"{name} needs {module} (pip install 'skpart[{extra}]')"
        )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SKPART_DATA", "SKPART_OUTPUT", "MPLBACKEND")
    }
    env.update(
        SKPART_QUICK="1",
        SKPART_OUTPUT=str(tmp_path),
        MPLBACKEND="Agg",
    )
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "digits" in result.stdout  # the fallback data set, not MNIST
    # A clean run: no warning (convergence or other) on stderr.
    assert "Warning" not in result.stderr, result.stderr[-4000:]
    for figure in FIGURES[name]:
        path = tmp_path / figure
        assert path.is_file(), f"{name} did not save {figure}"
        assert path.stat().st_size > 1000, f"{figure} is nearly empty"
