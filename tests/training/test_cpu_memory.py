"""dems_training.cpu_memory: after `keep_freed_memory()`, a large tensor freed and allocated again reuses pages the
process already has, where glibc's default hands them back to the kernel and faults fresh ones in.

The allocator setting is process-wide, so the measurement runs in a child process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import train


ROOT = Path(__file__).resolve().parents[2]

# Minor page faults of touching a fresh 64 MiB tensor (16384 pages of 4 KiB): the fewest over several rounds.
CHILD = """
import json, resource, sys, torch
from dems_training.cpu_memory import keep_freed_memory

def faults_of_one_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20, dtype=torch.float32).fill_(1.0)  # allocated, touched, freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_one_round()
default = min(faults_of_one_round() for _ in range(4))
applied = keep_freed_memory()
faults_of_one_round()
kept = min(faults_of_one_round() for _ in range(8))
print(json.dumps({"default": default, "applied": applied, "kept": kept}))
"""


@pytest.mark.slow
def test_freed_memory_is_reused_without_page_faults():
    result = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["applied"] is True  # this machine runs glibc
    # 64 MiB is above glibc's largest default mmap threshold (32 MiB): every round maps and faults in new pages
    assert measured["default"] >= 8000, measured
    # kept in the heap: the next round writes to pages the process already holds. The minimum over rounds, because
    # the kernel may still reclaim idle heap pages on its own (this VM runs a proactive reclaimer, kdamond).
    assert measured["kept"] < 100, measured


def test_train_refuses_the_flag_where_it_cannot_apply(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(train, "keep_freed_memory", lambda: False)
    code = train.main(["--keep_freed_memory", "--output_dir", str(tmp_path / "out")])
    assert code == 2
    assert "--keep_freed_memory needs glibc" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
