"""Loading the scripts of benchmarks/ in tests."""

import contextlib
import importlib.util
import sys
from pathlib import Path

import torch


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@contextlib.contextmanager
def benchmark_module(name: str):
    """benchmarks/<name>.py as a module, with benchmarks/ on sys.path while it is in use (the scripts import each
    other from their folder), and torch's thread count restored afterwards (the scripts set it)."""
    sys.path.insert(0, str(BENCHMARKS))
    threads = torch.get_num_threads()
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        torch.set_num_threads(threads)
        sys.path.remove(str(BENCHMARKS))
