"""Benchmarks: icevault beside moto's server and the machine's limits, in one run."""
