"""push_to_hub.py: the exported folder (transformers' own save_pretrained remote-code export) loads without the
project (remote code) and with it (registration), carries the run's card, summary and TensorBoard traces, the upload
sends that same folder, and each failure is one clear line.

The Hub is never contacted: uploads go to mocks of HfApi's methods, or to a closed local port for the
unreachable case.
"""

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from command_helpers import assert_one_line_error as one_line_error
from hub_helpers import check_loads_without_the_project, exported_files
from huggingface_hub import HfApi
from PIL import Image
from reference_dems import random_reference_state_dict, reference_logits
from tiny_configs import TINY_LABELS, make_tiny_config

from dems_training.hub.export import verify_folder
from dems_training.hub.source import Source
from dems_training.outputs import CURVES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE
from dems_training.training_plot import plot_history
from modeling_dems import DemsConfig, DemsForImageClassification, DemsImageProcessor


REPO_ROOT = Path(__file__).resolve().parents[2]
# push_to_hub.py is a top-level script, not part of the installed packages: load it from the checkout.
_spec = importlib.util.spec_from_file_location("push_to_hub", REPO_ROOT / "push_to_hub.py")
push_to_hub = sys.modules.setdefault("push_to_hub", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(push_to_hub)
LABELS = list(TINY_LABELS)
SECRET = "hf_push_test_secret_0123456789"
PROJECT_PACKAGES = ("configuration_dems", "modeling_dems", "dems_training")
TRAIN_RECIPE = {"stage": "pretrain", "epochs": 3, "peak learning rate": 0.01}
HISTORY = [
    {"epoch": 1, "step": 4, "train_loss": 1.25, "learning_rate": 0.01, "eval_loss": 1.1, "eval_top1_accuracy": 0.5},
    {"epoch": 2, "step": 8, "train_loss": 0.75, "learning_rate": 0.005, "eval_loss": 1.05, "eval_top1_accuracy": 0.625},
]
EVENTS_FILE = "runs/Jan01_00-00-00_host/events.out.tfevents.1.host"


def tiny_config() -> DemsConfig:
    """The tests' "tiny" config (tiny_configs.py): one 16x16 region, 2 blocks, cat/dog/bird."""
    return make_tiny_config()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A train.py-like output folder of a tiny model after a few optimizer steps, and the model itself."""
    torch.manual_seed(0)
    model = DemsForImageClassification(tiny_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(4):
        pixels, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
        model(pixel_values=pixels, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    folder = tmp_path_factory.mktemp("train_output")
    model.save_pretrained(folder)
    DemsImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    results = {"eval_top1_accuracy": 0.625, "eval_top5_accuracy": 1.0, "eval_loss": 1.05}
    (folder / "all_results.json").write_text(json.dumps(results))
    # What train.py leaves beside the weights: the run summary the card is rendered from, its picture, and the
    # TensorBoard traces.
    summary = {
        "dataset": {"name": "uoft-cs/cifar10", "train_images": 40, "held_out_images": 8, "classes": 3},
        "recipe": TRAIN_RECIPE,
        "results": results,
        "history": HISTORY,
        "curves": CURVES_FILE,
        "explanations": EXPLANATIONS_FILE,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary))
    plot_history(HISTORY, str(folder / CURVES_FILE))
    Image.new("RGB", (8, 4), (200, 10, 10)).save(folder / EXPLANATIONS_FILE)  # stands in for explain.py's picture
    (folder / EVENTS_FILE).parent.mkdir(parents=True)
    (folder / EVENTS_FILE).write_bytes(b"tensorboard event records")
    return model, folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    _, folder = trained
    out = tmp_path_factory.mktemp("export") / "dems-tiny-test"
    code = push_to_hub.main([str(folder), "--local_dir", str(out), "--repo_id", "me/dems-tiny-test"])
    assert code == 0
    return out


def run_main(capsys, *argv):
    code = push_to_hub.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments, exit_code=2):
    one_line_error("push_to_hub.py", code, err, *fragments, exit_code=exit_code)


# --------------------------------------------------------------------------------------------- the exported folder


def test_export_writes_the_hub_folder(trained, exported):
    _, folder = trained
    assert exported_files(exported) == [  # weights, configs, code, card, the run's records; no training state
        "README.md",
        "all_results.json",
        "config.json",
        "configuration_dems.py",
        EXPLANATIONS_FILE,
        "image_processing_dems.py",
        "model.safetensors",
        "modeling_dems.py",
        "preprocessor_config.json",
        EVENTS_FILE,
        CURVES_FILE,
        SUMMARY_FILE,
    ]
    for name in (EVENTS_FILE, CURVES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE):
        assert (exported / name).read_bytes() == (folder / name).read_bytes(), name
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "dems"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_dems.DemsConfig",
        "AutoModel": "modeling_dems.DemsModel",
        "AutoModelForImageClassification": "modeling_dems.DemsForImageClassification",
    }
    processor = json.loads((exported / "preprocessor_config.json").read_text())
    assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_dems.DemsImageProcessor"}


def test_exported_code_passes_the_dynamic_module_checks(exported):
    """What transformers runs on the user's machine: the only relative import is the configuration, which lies
    next to the modeling file; no file needs the project installed."""
    from transformers.dynamic_module_utils import check_imports, get_imports, get_relative_import_files

    assert check_imports(exported / "modeling_dems.py") == ["configuration_dems"]
    assert get_relative_import_files(exported / "modeling_dems.py") == [str(exported / "configuration_dems.py")]
    assert check_imports(exported / "configuration_dems.py") == []
    assert check_imports(exported / "image_processing_dems.py") == []
    for name in ("modeling_dems.py", "configuration_dems.py", "image_processing_dems.py"):
        assert not set(get_imports(exported / name)) & set(PROJECT_PACKAGES), name


def test_exported_code_is_the_project_source(exported):
    # Copied by save_pretrained from the project's package, byte for byte: no second copy to drift.
    for name in ("configuration_dems.py", "modeling_dems.py", "image_processing_dems.py"):
        assert (exported / name).read_bytes() == (REPO_ROOT / "modeling_dems" / name).read_bytes(), name


def test_configuration_dems_re_exports_the_one_class():
    import configuration_dems
    import modeling_dems.configuration_dems

    assert configuration_dems.DemsConfig is modeling_dems.configuration_dems.DemsConfig is DemsConfig
    assert configuration_dems.DEMS_PRESETS is modeling_dems.configuration_dems.DEMS_PRESETS


@pytest.mark.slow
def test_loads_without_the_project_through_remote_code(trained, exported, tmp_path):
    """A fresh interpreter that cannot import the project, offline, gets the original's outputs."""
    model, _ = trained
    check_loads_without_the_project(model, exported, tmp_path)


def test_loads_without_trust_remote_code_when_the_project_is_importable(trained, exported):
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

    model, _ = trained
    config = AutoConfig.from_pretrained(exported)
    processor = AutoImageProcessor.from_pretrained(exported)
    loaded = AutoModelForImageClassification.from_pretrained(exported).eval()
    # The registered project classes, not the folder's copies.
    assert type(config) is DemsConfig
    assert type(processor) is DemsImageProcessor
    assert type(loaded) is DemsForImageClassification
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixels).logits, model(pixel_values=pixels).logits)
    classifier = pipeline("image-classification", model=str(exported))
    assert type(classifier.model) is DemsForImageClassification
    predictions = classifier(Image.new("RGB", (16, 16), (200, 30, 30)))
    assert {p["label"] for p in predictions} == set(LABELS)


def test_card_carries_the_training_results(exported):
    from huggingface_hub import ModelCard

    card = ModelCard.load(exported / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "image-classification"
    assert data["datasets"] == ["uoft-cs/cifar10"]  # from train.py's summary
    assert data["model-index"][0]["name"] == "dems-tiny-test"
    metrics = {m["name"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"Top-1 accuracy": 0.625, "Top-5 accuracy": 1.0}
    assert 'from_pretrained("me/dems-tiny-test", trust_remote_code=True)' in card.text
    assert "| epochs | 3 |" in card.text and "| peak learning rate | 0.01 |" in card.text
    assert "| training images | 40 |" in card.text and "| held-out images | 8 |" in card.text
    assert "| 2 | 8 | 0.75 | 0.005 | 1.05 | 0.625 |" in card.text  # the per-epoch history
    assert f"]({CURVES_FILE})" in card.text
    assert "## What the model looks at" in card.text and f"]({EXPLANATIONS_FILE})" in card.text
    assert "Pattern Recognition" in card.text
    # weights trained by this project: the project's license, and no word of the reference release's
    assert data["license"] == "apache-2.0"
    assert "reference release" not in card.text


def test_folder_without_a_run_summary_takes_its_card_from_the_command_line(trained, tmp_path, capsys, monkeypatch):
    # A save_pretrained folder from elsewhere: the results files and the flags are all the card has; the license is
    # the --base_model's, read from its card on the Hub (here a mock).
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo_id, timeout=None: types.SimpleNamespace(
        card_data=types.SimpleNamespace(license="cc-by-nc-4.0" if repo_id == "me/b" else None)))
    model, folder = trained
    plain = tmp_path / "plain"
    model.save_pretrained(plain)
    (plain / "eval_results.json").write_text(json.dumps({"eval_top1_accuracy": 0.5}))
    out = tmp_path / "out"
    code, _, err = run_main(capsys, plain, "--local_dir", out, "--dataset", "uoft-cs/cifar100", "--base_model", "me/b")
    assert code == 0, err
    from huggingface_hub import ModelCard

    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["datasets"] == ["uoft-cs/cifar100"] and data["base_model"] == "me/b"
    assert data["license"] == "cc-by-nc-4.0"
    assert data["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.5
    assert not (out / SUMMARY_FILE).exists() and not (out / "runs").exists()


def test_local_dir_is_not_overwritten_without_asking(trained, tmp_path, capsys):
    _, folder = trained
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, out, err = run_main(capsys, folder, "--local_dir", target)
    assert_one_line_error(code, err, "is not empty", "--overwrite")
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]

    code, out, err = run_main(capsys, folder, "--local_dir", target, "--overwrite")
    assert code == 0, err
    assert not (target / "keep.txt").exists()
    assert (target / "model.safetensors").is_file()
    assert "nothing uploaded" in out


def test_labels_option_names_the_classes(trained, tmp_path, capsys):
    _, folder = trained
    target = tmp_path / "relabelled"
    code, _, err = run_main(capsys, folder, "--local_dir", target, "--labels", "ant,bee,cow")
    assert code == 0, err
    assert json.loads((target / "config.json").read_text())["id2label"] == {"0": "ant", "1": "bee", "2": "cow"}
    code, _, err = run_main(capsys, folder, "--local_dir", tmp_path / "bad", "--labels", "ant,bee")
    assert_one_line_error(code, err, "--labels gives 2 names but the model has 3 classes")


# ------------------------------------------------------------------------------------------------------ uploads


@pytest.fixture
def token_env(monkeypatch, tmp_path):
    """A token in HF_TOKEN only; no cached login, no OIDC."""
    import huggingface_hub.constants as hub_constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path / "no_cached_token"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return SECRET


@pytest.fixture
def fake_hub(monkeypatch):
    """HfApi's write calls replaced by recorders; the uploaded folder is snapshot while it exists."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs, self.token))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", repo_id, kwargs, self.token))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {name: (Path(folder_path) / name).read_bytes() for name in exported_files(Path(folder_path))}
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}, self.token))
        return types.SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/abc123", pr_url=None)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_upload_sends_the_exported_folder(trained, exported, token_env, fake_hub, capsys):
    _, folder = trained
    code, out, err = run_main(
        capsys,
        folder,
        "--repo_id",
        "me/dems-tiny-test",
        "--private",
        "--revision",
        "v1",
        "--commit_message",
        "first model",
    )
    assert code == 0, err
    assert [c[0] for c in fake_hub] == ["create_repo", "create_branch", "upload_folder"]
    assert all(c[1] == "me/dems-tiny-test" and c[3] == SECRET for c in fake_hub)
    assert fake_hub[0][2]["private"] is True and fake_hub[0][2]["exist_ok"] is True
    assert fake_hub[1][2]["branch"] == "v1"
    upload = fake_hub[2][2]
    assert upload["revision"] == "v1" and upload["commit_message"] == "first model"
    # Exactly what --local_dir writes, byte for byte, and the token in none of it.
    files = upload["files"]
    assert sorted(files) == exported_files(exported)
    for name, content in files.items():
        assert content == (exported / name).read_bytes(), name
        assert SECRET.encode() not in content
    assert "https://huggingface.co/me/dems-tiny-test/commit/abc123" in out
    assert SECRET not in out + err


def test_dry_run_uploads_nothing(trained, token_env, fake_hub, capsys):
    _, folder = trained
    code, out, err = run_main(capsys, folder, "--repo_id", "me/dems-tiny-test", "--dry_run")
    assert code == 0, err
    assert fake_hub == []
    assert "dry run" in out and "model.safetensors" in out and "nothing uploaded" in out


def test_error_no_token(trained, token_env, fake_hub, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    _, folder = trained
    code, out, err = run_main(capsys, folder, "--repo_id", "me/dems-tiny-test")
    assert_one_line_error(code, err, "no Hugging Face token", "HF_TOKEN", "hf auth login", "nothing was uploaded")
    assert fake_hub == []
    assert out == ""


def test_error_hub_unreachable(trained, token_env, monkeypatch, capsys):
    # A real connection attempt, to a local port where nothing listens.
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    _, folder = trained
    code, out, err = run_main(capsys, folder, "--repo_id", "me/dems-tiny-test")
    assert_one_line_error(
        code, err, "could not reach the Hugging Face Hub", "127.0.0.1:9", "nothing was uploaded", exit_code=1
    )
    assert "uploaded" not in out
    assert SECRET not in out + err


def test_error_upload_interrupted(trained, token_env, fake_hub, monkeypatch, capsys):
    """The repository was created but the commit failed: said so, not claimed as done."""
    import httpx2

    def failing_upload(self, **kwargs):
        raise httpx2.ConnectError(f"connection reset while sending with {SECRET}")

    monkeypatch.setattr(HfApi, "upload_folder", failing_upload)
    _, folder = trained
    code, out, err = run_main(capsys, folder, "--repo_id", "me/dems-tiny-test")
    assert_one_line_error(code, err, "to upload the files", "ConnectError", "nothing was uploaded to it", exit_code=1)
    assert SECRET not in out + err
    assert "uploaded" not in out


def test_error_token_refused(trained, token_env, fake_hub, monkeypatch, capsys):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    def refuse(self, repo_id, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        raise HfHubHTTPError("401 Unauthorized: invalid token", response=httpx2.Response(401, request=request))

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    _, folder = trained
    code, _, err = run_main(capsys, folder, "--repo_id", "me/dems-tiny-test")
    assert_one_line_error(
        code, err, "refused to create the repository", "write access", "nothing was uploaded", exit_code=1
    )


# ------------------------------------------------------------------------------------------------- input errors


def test_error_folder_without_weights(trained, tmp_path, capsys):
    _, folder = trained
    broken = tmp_path / "no_weights"
    broken.mkdir()
    (broken / "config.json").write_bytes((folder / "config.json").read_bytes())
    code, _, err = run_main(capsys, broken, "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "has no model weights", "model.safetensors")
    assert not (tmp_path / "out").exists()


def test_error_folder_with_only_trainer_checkpoints(trained, tmp_path, capsys):
    _, folder = trained
    run = tmp_path / "interrupted_run"
    (run / "checkpoint-500").mkdir(parents=True)
    (run / "config.json").write_bytes((folder / "config.json").read_bytes())
    code, _, err = run_main(capsys, run, "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "has no model weights", "checkpoint-500")


def test_error_invalid_dems_config(trained, tmp_path, capsys):
    _, folder = trained
    broken = tmp_path / "bad_config"
    broken.mkdir()
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 30  # not divisible by 4
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    code, _, err = run_main(capsys, broken, "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "cannot load the model in", "hidden_size=30")


def test_error_folder_without_config(tmp_path, capsys):
    code, _, err = run_main(capsys, tmp_path, "--local_dir", tmp_path.parent / "out_no_config")
    assert_one_line_error(code, err, "has no config.json")


def test_error_config_of_another_model_type(trained, tmp_path, capsys):
    _, folder = trained
    other = tmp_path / "vit"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 32}))
    (other / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    code, _, err = run_main(capsys, other, "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "'vit' model", "not a DEMS-ViT ('dems')")


def test_error_unknown_preset(tmp_path, capsys):
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model": {}}, checkpoint)
    code, _, err = run_main(capsys, checkpoint, "--preset", "huge-32", "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "unknown preset 'huge-32'", "small-256, small-32, tiny-256, tiny-32")


def test_error_preset_with_a_folder(trained, tmp_path, capsys):
    _, folder = trained
    code, _, err = run_main(capsys, folder, "--preset", "tiny-32", "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "apply to a .pth checkpoint only")


def test_error_invalid_repo_id(trained, token_env, fake_hub, capsys):
    _, folder = trained
    code, _, err = run_main(capsys, folder, "--repo_id", "me/two/slashes")
    assert_one_line_error(code, err, "--repo_id 'me/two/slashes' is not a valid repository id")
    assert fake_hub == []


def test_error_nothing_to_do(trained, capsys):
    _, folder = trained
    code, _, err = run_main(capsys, folder)
    assert_one_line_error(code, err, "give --repo_id to upload, or --local_dir / --dry_run")


def test_export_check_catches_weights_that_differ(exported):
    # The folder is reloaded and compared tensor by tensor before anything is written out or uploaded.
    other = DemsForImageClassification(tiny_config())
    # A difference is a bug of the export, not a user error: it keeps its traceback.
    with pytest.raises(RuntimeError, match="the exported weights differ from the model's"):
        verify_folder(Source(model=other, processor=None, name="other"), exported)


@pytest.mark.slow
def test_command_line_reports_errors_in_one_line(tmp_path):
    script = REPO_ROOT / "push_to_hub.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "push_to_hub.py: error: give --repo_id to upload, or --local_dir / --dry_run to build the folder without "
        "uploading"
    ]


# -------------------------------------------------------------------------------------------------- .pth input

# A checkpoint in the reference release's layout: its keys and shapes are those of the spec's listing
# (tests/model/data/reference_state_dict.txt, checked by test_convert.py), its logits come from the independent
# reference forward (reference_dems.py), so a wrong key map in the converter fails the tests below.
REFERENCE_LAYOUT = {"dim": 64, "patch": 2, "image_size": 16, "channels": 3, "depth": 12, "classes": 5, "merged": (8, 4)}


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory):
    """A random reference state dict whose config the converter infers from the shapes alone (12 blocks, merges
    [6, 10], width 64 so one head), saved as the reference's DDP training saved it: under `model`, keys prefixed
    `module.`."""
    state_dict = random_reference_state_dict(seed=3, **REFERENCE_LAYOUT)
    path = tmp_path_factory.mktemp("reference") / "checkpoint.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state_dict.items()}, "epoch": 799}, path)
    return state_dict, path


def test_reference_pth_exports_through_the_converter(reference_checkpoint, tmp_path, capsys):
    state_dict, path = reference_checkpoint
    out = tmp_path / "from_pth"
    code, stdout, err = run_main(
        capsys, path, "--num_labels", "5", "--labels", "a,b,c,d,e", "--dataset", "uoft-cs/cifar10", "--local_dir", out
    )
    assert code == 0, err
    assert {"model.safetensors", "modeling_dems.py", "configuration_dems.py", "README.md"} <= set(stdout.split())
    loaded = DemsForImageClassification.from_pretrained(out).eval()
    assert loaded.config.id2label == dict(enumerate("abcde"))
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = loaded(pixel_values=pixels).logits
    expected = reference_logits(state_dict, pixels, image_size=16, patch=2, heads=1, depth=12)
    torch.testing.assert_close(logits, expected)
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 16, "width": 16}
    assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_dems.DemsImageProcessor"}
    assert "uoft-cs/cifar10" in (out / "README.md").read_text()


def test_reference_pth_keeps_the_reference_release_license(reference_checkpoint, tmp_path, capsys):
    from huggingface_hub import ModelCard

    _, path = reference_checkpoint
    code, _, err = run_main(capsys, path, "--local_dir", tmp_path / "default")
    assert code == 0, err
    card = ModelCard.load(tmp_path / "default" / "README.md")
    assert card.data.to_dict()["license"] == "cc-by-nc-4.0"
    said = [line for line in card.text.splitlines() if "reference release" in line]
    assert len(said) == 1 and "CC BY-NC 4.0" in said[0] and "`cc-by-nc-4.0`" in said[0], said
    # --license still decides the metadata (e.g. for weights relicensed by their authors); the origin stays said
    code, _, err = run_main(capsys, path, "--license", "mit", "--local_dir", tmp_path / "given")
    assert code == 0, err
    card = ModelCard.load(tmp_path / "given" / "README.md")
    assert card.data.to_dict()["license"] == "mit"
    assert sum("reference release" in line for line in card.text.splitlines()) == 1


def test_reference_pth_with_its_own_processor(reference_checkpoint, tmp_path, capsys):
    # E.g. the reference's Caltech101 evaluation: resize larger, then centre-crop.
    _, path = reference_checkpoint
    crop = {"height": 16, "width": 16}
    DemsImageProcessor(size={"height": 20, "width": 20}, do_center_crop=True, crop_size=crop).save_pretrained(
        tmp_path / "processor"
    )
    out = tmp_path / "from_pth"
    code, _, err = run_main(capsys, path, "--processor", tmp_path / "processor", "--local_dir", out)
    assert code == 0, err
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 20, "width": 20} and processor["crop_size"] == crop
    assert processor["do_center_crop"] is True


def test_error_reference_pth_that_does_not_fit(reference_checkpoint, tmp_path, capsys):
    _, path = reference_checkpoint
    code, _, err = run_main(capsys, path, "--num_labels", "7", "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, f"cannot convert {path}", "num_labels=7", "5 classes")
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"not a checkpoint")
    code, _, err = run_main(capsys, damaged, "--local_dir", tmp_path / "out")
    assert_one_line_error(code, err, "cannot read", "as a PyTorch checkpoint")
