"""Keep freed memory inside the process (glibc only), for faster training steps on CPU.

PyTorch's CPU tensors come from the C library's `malloc`. glibc serves every block above its mmap threshold (128 KiB,
raised dynamically up to 32 MiB) with fresh pages from the kernel and unmaps it on free; heap memory above the trim
threshold is handed back as well. A DEMS training step allocates and frees tensors of tens of MiB by the dozen
(tiny-32, batch 32: 10912 x 768 activations are 32 MiB), so every step the kernel faults in and zeroes hundreds
of MiB of 4 KiB pages again (tens of thousands of minor page faults per step, counted with `getrusage`). Raising both
thresholds keeps the freed blocks in the heap for the next step: no faults, and warmer memory.

The cost: the process keeps its peak memory instead of shrinking between steps, which a training loop reaches every
step anyway. PyTorch's CPU performance tuning guide swaps in jemalloc or tcmalloc for the same reason; here it is two
`mallopt` calls, or, for any process, the environment variable
`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647`.
Measured effect: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

# Blocks up to 1 GiB come from the heap; larger ones are still mapped one by one. Some glibc versions refuse
# thresholds above 32 MiB (half their heap size): that is the fallback.
MMAP_THRESHOLDS_BYTES = (1 << 30, 32 << 20)
# mallopt takes a C int: the largest value means "never trim"
NEVER_TRIM = 2**31 - 1


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for the rest of the process. Returns True when applied, False when the
    C library is not glibc (macOS, Windows, musl), where it does nothing."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return False
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):  # mallopt's parameters are glibc's
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not any(mallopt(M_MMAP_THRESHOLD, threshold) for threshold in MMAP_THRESHOLDS_BYTES):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
