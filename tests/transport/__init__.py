"""Transport robustness and timing tests (a package so module names stay unique for mypy)."""
