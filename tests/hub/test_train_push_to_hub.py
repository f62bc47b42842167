"""train.py --push_to_hub publishes a repository that loads: with the Hub client replaced by a recorder, every commit
that holds config.json also holds the code its auto_map names, and the last one, made after the held-out evaluation,
carries the DEMS card with the final top-1, the run summary, the curves picture and the TensorBoard traces. What was
"uploaded" loads without the project (remote code, offline) and gives the trained model's outputs."""

import json
import shutil
import types
from concurrent.futures import Future
from pathlib import Path

import pytest
from hub_helpers import check_loads_without_the_project, exported_files
from huggingface_hub import HfApi, ModelCard, RepoUrl
from huggingface_hub.utils import filter_repo_objects
from train_helpers import tiny_run_args

import train
from dems_training.outputs import CURVES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE
from modeling_dems import DemsForImageClassification


# These tests share a whole train.py run pushing to a fake Hub (slow), on one torch thread as every test in
# tests/training.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_torch_thread")]
REPO_ID = "me/dems-digits"


class HubRecorder:
    """Stands in for HfApi.create_repo and HfApi.upload_folder: each commit is kept as a copy of the files the Hub
    would have received (after the caller's allow/ignore patterns), in order."""

    def __init__(self, root: Path):
        self.root = root
        self.repos: list[str] = []
        self.commits: list[dict] = []

    def create_repo(self, api, repo_id, **kwargs):
        self.repos.append(repo_id)
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, api, *, repo_id, folder_path, path_in_repo=None, commit_message=None,
                      allow_patterns=None, ignore_patterns=None, run_as_future=False, **kwargs):
        commit = self.root / f"commit-{len(self.commits)}"
        files = exported_files(Path(folder_path))
        names = list(filter_repo_objects(files, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        for name in names:
            target = commit / (path_in_repo or "") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder_path) / name, target)
        self.commits.append({"repo_id": repo_id, "message": commit_message, "folder": commit})
        info = types.SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/{len(self.commits)}")
        if not run_as_future:
            return info
        future = Future()
        future.set_result(info)
        return future

    def repository_after(self, count: int, target: Path) -> Path:
        """The repository as the Hub holds it after the first `count` commits (a commit adds or replaces files)."""
        for commit in self.commits[:count]:
            shutil.copytree(commit["folder"], target, dirs_exist_ok=True)
        return target


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    recorder = HubRecorder(root / "hub")
    patch = pytest.MonkeyPatch()
    patch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: recorder.create_repo(api, repo_id, **kw))
    patch.setattr(HfApi, "upload_folder", lambda api, **kw: recorder.upload_folder(api, **kw))
    output_dir = root / "run"
    args = tiny_run_args(
        output_dir,
        "--dataset", "digits",
        "--max_train_samples", "64",
        "--max_eval_samples", "32",
        "--num_train_epochs", "2",
        "--global_batch_size", "16",
        "--logging_steps", "2",
        "--report_to", "tensorboard",
        "--push_to_hub",
        "--hub_model_id", REPO_ID,
    )
    try:
        results = train.run(args)
    finally:
        patch.undo()
    return recorder, output_dir, results


def test_every_commit_carries_the_code_its_config_names(pushed, tmp_path):
    recorder, _, _ = pushed
    assert recorder.repos == [REPO_ID]
    messages = [c["message"] for c in recorder.commits]
    # One commit per epoch's checkpoint (Trainer's hub_strategy "every_save"), then the final one: no push before
    # the held-out evaluation ("Model save").
    assert messages == ["Training in progress, epoch 1", "Training in progress, epoch 2", "End of training"]
    assert all(c["repo_id"] == REPO_ID for c in recorder.commits)
    for count in range(1, len(recorder.commits) + 1):
        repository = recorder.repository_after(count, tmp_path / f"after-{count}")
        for config_file in ("config.json", "preprocessor_config.json"):
            auto_map = json.loads((repository / config_file).read_text())["auto_map"]
            for reference in auto_map.values():
                assert (repository / f"{reference.split('.')[0]}.py").is_file(), (count, reference)
        config = json.loads((repository / "config.json").read_text())
        assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}


def test_the_last_commit_holds_the_card_summary_picture_and_traces(pushed):
    recorder, output_dir, results = pushed
    last = recorder.commits[-1]["folder"]
    files = exported_files(last)
    for name in ("README.md", "config.json", "model.safetensors", "preprocessor_config.json", "modeling_dems.py",
                 "configuration_dems.py", "image_processing_dems.py", "eval_results.json", SUMMARY_FILE, CURVES_FILE,
                 EXPLANATIONS_FILE):
        assert name in files, name
    assert any(f.startswith("runs/") and "tfevents" in f for f in files), files
    assert not any(f.startswith("checkpoint-") for f in files)

    card = ModelCard.load(last / "README.md")
    metrics = {m["name"]: m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert metrics["Top-1 accuracy"] == round(results["eval_top1_accuracy"], 6)
    assert card.data.to_dict()["model-index"][0]["name"] == "dems-digits"
    assert f'from_pretrained("{REPO_ID}", trust_remote_code=True)' in card.text
    assert "## Training history" in card.text and f"]({CURVES_FILE})" in card.text
    assert "## What the model looks at" in card.text and f"]({EXPLANATIONS_FILE})" in card.text
    summary = json.loads((last / SUMMARY_FILE).read_text())
    assert [row["epoch"] for row in summary["history"]] == [1, 2]
    assert summary["dataset"]["train_images"] == 64 and summary["dataset"]["held_out_images"] == 32
    assert summary["results"]["eval_top1_accuracy"] == results["eval_top1_accuracy"]


def test_what_was_pushed_loads_without_the_project(pushed, tmp_path):
    recorder, output_dir, _ = pushed
    repository = recorder.repository_after(len(recorder.commits), tmp_path / "repository")
    model = DemsForImageClassification.from_pretrained(output_dir)
    check_loads_without_the_project(model, repository, tmp_path)
