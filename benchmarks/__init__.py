"""trimq benchmark suite: see ``benchmarks/README.md`` and :mod:`benchmarks.run`."""
