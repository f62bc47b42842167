"""Benchmarks of DEMS-ViT: `throughput.py` and `op_times.py` (command lines over the shared `harness`), the input
pipeline (`input_pipeline.py`), the image-folder load and check (`image_folder_check.py`) and the DEMS-vs-ViT
data-efficiency study (`data_efficiency.py`). Results: RESULTS.md and results/.

A package so that the scripts and the tests import the harness by one name, `benchmarks.harness`, without putting one
benchmark's folder on `sys.path` for another."""
