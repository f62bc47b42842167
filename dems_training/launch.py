"""What the command line and the launcher tell a run: the options the user gave, the processes in the job and on
this machine, the cores this process may use. recipe.py derives its defaults from them."""

import argparse
import os


def user_given_options(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The options present in `argv`, parsed (so `--lr=1` and `--lr 1` both count), without defaults."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        namespace, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return vars(namespace)


def world_size() -> int:
    """Processes in the job, from the variables torchrun and `accelerate launch` set (1 for a plain `python`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, which taskset, cgroup cpusets and SLURM set)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def processes_on_node() -> int:
    """Training processes on this machine: LOCAL_WORLD_SIZE (torchrun, accelerate launch), else WORLD_SIZE."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
