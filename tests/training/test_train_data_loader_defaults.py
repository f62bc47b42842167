"""Data loader defaults: workers from the cores and the processes on the node on CUDA, none on the CPU; persistent
workers and pinned memory on CUDA; whatever the user sets wins."""

import pytest

from dems_training import launch, recipe
from dems_training.recipe import MAX_DEFAULT_WORKERS, data_loader_defaults, recipe_defaults


@pytest.mark.parametrize(
    "cpus,processes,workers",
    [
        (16, 1, 15),  # one GPU: every core but the training process's own
        (64, 8, 7),  # eight GPUs on 64 cores: 8 cores each, one of them for the process
        (16, 8, 1),  # two cores per process: one for the process, one worker
        (8, 8, 1),  # one core per process: still one worker
        (256, 1, MAX_DEFAULT_WORKERS),  # capped
    ],
)
def test_cuda_workers_come_from_the_cores_and_the_processes_on_the_node(cpus, processes, workers):
    defaults = data_loader_defaults({}, use_cuda=True, cpus=cpus, local_processes=processes)
    assert defaults == {
        "dataloader_num_workers": workers,
        "dataloader_persistent_workers": True,
        "dataloader_pin_memory": True,
    }


def test_cpu_training_loads_in_the_training_process():
    assert data_loader_defaults({}, use_cuda=False, cpus=64, local_processes=1) == {
        "dataloader_num_workers": 0,
        "dataloader_persistent_workers": False,
        "dataloader_pin_memory": False,
    }


def test_the_users_worker_count_wins_and_decides_persistence():
    assert data_loader_defaults({"dataloader_num_workers": 3}, False, 64, 1)["dataloader_num_workers"] == 3
    # Persistent workers need workers: with none asked for on CUDA, nothing persists.
    assert data_loader_defaults({"dataloader_num_workers": 0}, True, 64, 1)["dataloader_persistent_workers"] is False


def test_recipe_defaults_read_the_node(monkeypatch):
    monkeypatch.setattr(recipe.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(recipe, "usable_cpus", lambda: 32)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    defaults = recipe_defaults({}, {}, processes=4)
    assert defaults["dataloader_num_workers"] == 7 and defaults["dataloader_persistent_workers"] is True
    # --use_cpu on a GPU machine: a CPU run
    defaults = recipe_defaults({"use_cpu": True}, {}, processes=1)
    assert defaults["dataloader_num_workers"] == 0 and defaults["dataloader_pin_memory"] is False
    given = recipe_defaults({"dataloader_pin_memory": False, "dataloader_num_workers": 2}, {}, processes=4)
    # what the user gave is applied over these defaults by the parser; the derived ones follow it
    assert given["dataloader_num_workers"] == 2 and given["dataloader_persistent_workers"] is True


def test_processes_on_node_prefers_local_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert launch.processes_on_node() == 8
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert launch.processes_on_node() == 16
    monkeypatch.delenv("WORLD_SIZE")
    assert launch.processes_on_node() == 1
