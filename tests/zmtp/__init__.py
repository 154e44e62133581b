"""Sans-I/O ZMTP tests (a package so test modules can share helpers and mypy can follow them)."""
