"""The benchmark (make bench) and other measurements; never part of make test."""
