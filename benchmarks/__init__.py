"""Benchmarks of DEMS-ViT: `throughput.py` and `op_times.py`, command lines over the shared `harness`.

A package so that the scripts and the tests import the harness by one name, `benchmarks.harness`, without putting one
benchmark's folder on `sys.path` for another."""
