"""dems_training.hub.model_card: the README.md of a DEMS checkpoint parses as a Hub model card and carries the metrics,
the per-epoch history, the data set's facts and the recipe, all rendered from the run summary's data."""

import json
import types

from huggingface_hub import HfApi, ModelCard

from configuration_dems import DemsConfig
from dems_training.hub.model_card import find_metric, inherited_license, render_model_card
from dems_training.outputs import read_results


def config():
    return DemsConfig.from_preset("tiny-32", num_labels=100)


def metrics_of(card: ModelCard) -> dict:
    results = card.data.to_dict()["model-index"][0]["results"]
    return {m["name"]: m["value"] for r in results for m in r["metrics"]}


def test_metadata_parses_and_carries_top1_top5():
    # The keys train.py's compute_metrics produces, as Trainer prefixes them.
    results = {"eval_top1_accuracy": 0.835, "eval_top5_accuracy": 0.9712, "eval_loss": 0.91, "eval_runtime": 12.5}
    summary = {"dataset": {"name": "uoft-cs/cifar100"}, "results": results}
    text = render_model_card(model_name="dems-tiny-cifar100", summary=summary, config=config(), repo_id="me/x")
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "image-classification"
    assert data["license"] == "apache-2.0"
    assert data["datasets"] == ["uoft-cs/cifar100"]
    assert data["metrics"] == ["accuracy"]
    assert {"dems", "vision", "image-classification"} <= set(data["tags"])
    assert metrics_of(card) == {"Top-1 accuracy": 0.835, "Top-5 accuracy": 0.9712}
    index = data["model-index"][0]
    assert index["name"] == "dems-tiny-cifar100"
    dataset = {"name": "uoft-cs/cifar100", "type": "uoft-cs/cifar100", "split": "validation"}
    assert index["results"][0]["dataset"] == dataset
    assert "83.50 %" in card.text and "97.12 %" in card.text
    assert "eval_runtime" not in card.text  # speed, not quality


def test_reference_release_weights_say_where_they_come_from_and_under_which_license():
    text = render_model_card(model_name="m", config=config(), license="cc-by-nc-4.0", from_reference_release=True)
    card = ModelCard(text)
    assert card.data.to_dict()["license"] == "cc-by-nc-4.0"
    lines = [line for line in card.text.splitlines() if "reference release" in line]
    assert lines == [
        "The weights come from the reference release (https://github.com/visresearch/dems), converted unchanged, and "
        "are under its license, CC BY-NC 4.0 (`cc-by-nc-4.0`: attribution, non-commercial use only)."
    ]
    assert "reference release" not in render_model_card(model_name="m", config=config())


def test_fine_tuned_weights_keep_the_license_they_started_from():
    summary = {"base_model": "me/dems-reference", "base_model_license": "cc-by-nc-4.0"}
    card = ModelCard(render_model_card(model_name="m", config=config(), summary=summary))
    assert card.data.to_dict()["license"] == "cc-by-nc-4.0"
    said = [line for line in card.text.splitlines() if "fine-tuned from weights under" in line]
    assert said == [
        "It was fine-tuned from weights under `cc-by-nc-4.0`, and this card gives it the same license: fine-tuned "
        "weights derive from the weights they start from."
    ]
    # A license given by the user (e.g. the base's authors relicensed it) decides, and the card claims no inheritance.
    card = ModelCard(render_model_card(model_name="m", config=config(), summary=summary, license="mit"))
    assert card.data.to_dict()["license"] == "mit" and "fine-tuned from weights under" not in card.text


def test_inherited_license_of_a_reference_pth_a_folder_and_a_hub_id(tmp_path, monkeypatch, caplog):
    assert inherited_license(None) is None  # from scratch
    assert inherited_license("runs/ref.pth") == "cc-by-nc-4.0"  # train.py reads a .pth as a reference checkpoint
    assert caplog.records == []
    assert inherited_license(str(tmp_path)) is None  # a folder without a card: said, since the card will say apache
    assert [str(tmp_path) in r.message and "apache-2.0" in r.message for r in caplog.records] == [True]
    (tmp_path / "README.md").write_text(render_model_card(model_name="m", config=config(), license="cc-by-sa-4.0"))
    assert inherited_license(str(tmp_path)) == "cc-by-sa-4.0"

    def model_info(self, repo_id, timeout=None):
        assert repo_id == "me/base" and timeout is not None  # one bounded request, no retries
        return types.SimpleNamespace(card_data=ModelCard(render_model_card(
            model_name="base", config=config(), license="openrail")).data)

    monkeypatch.setattr(HfApi, "model_info", model_info)
    assert inherited_license("me/base") == "openrail"

    def unreachable(self, repo_id, timeout=None):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(HfApi, "model_info", unreachable)
    caplog.clear()
    assert inherited_license("me/base") is None
    assert ["'me/base'" in r.message and "no route to huggingface.co" in r.message for r in caplog.records] == [True]


def test_plain_accuracy_counts_as_top1():
    summary = {"dataset": {"name": "d/e"}, "results": {"eval_accuracy": 0.5}}
    card = ModelCard(render_model_card(model_name="m", summary=summary, config=config()))
    assert metrics_of(card) == {"Top-1 accuracy": 0.5}


def test_usage_snippet_and_citation():
    text = render_model_card(model_name="m", config=config(), repo_id="me/dems-tiny")
    assert 'AutoImageProcessor.from_pretrained("me/dems-tiny", trust_remote_code=True)' in text
    assert 'AutoModelForImageClassification.from_pretrained("me/dems-tiny", trust_remote_code=True)' in text
    assert 'pipeline("image-classification", model="me/dems-tiny", trust_remote_code=True)' in text
    for field in (
        "title   = {Data-efficient multi-scale fusion vision transformer}",
        "author  = {Tang, Hao and Liu, Dawei and Shen, Chengchao}",
        "journal = {Pattern Recognition}",
        "volume  = {161}",
        "pages   = {111305}",
        "year    = {2025}",
    ):
        assert field in text


def test_without_results_there_is_no_model_index():
    card = ModelCard(render_model_card(model_name="m", config=config()))
    data = card.data.to_dict()
    assert "model-index" not in data and "metrics" not in data and "datasets" not in data
    assert "## Results" not in card.text and "## Training history" not in card.text and "## Data" not in card.text


def test_local_dataset_stays_out_of_the_metadata(tmp_path):
    folder = tmp_path / "caltech101"
    folder.mkdir()
    summary = {"dataset": {"name": str(folder)}, "results": {"eval_top1_accuracy": 0.8}}
    card = ModelCard(render_model_card(model_name="m", summary=summary, config=config()))
    data = card.data.to_dict()
    assert "datasets" not in data
    assert data["model-index"][0]["results"][0]["dataset"]["name"] == "caltech101"
    assert str(tmp_path) not in card.text  # no local paths on the Hub


def test_local_paths_in_a_dataset_description_are_shortened():
    # train.py describes an image-folder data set by its path.
    summary = {
        "dataset": {"name": "image folder /srv/data/caltech101/train", "train_images": 7},
        "results": {"eval_top1_accuracy": 0.8},
    }
    text = render_model_card(model_name="m", summary=summary, config=config())
    data = ModelCard(text).data.to_dict()
    assert data["model-index"][0]["results"][0]["dataset"] == {
        "name": "image folder caltech101", "type": "image-folder-caltech101", "split": "validation"
    }
    assert "/srv/data" not in text
    assert "trained on `image folder caltech101`" in text
    assert "| data set | image folder caltech101 |" in text


def test_architecture_table_describes_the_config():
    text = render_model_card(model_name="m", config=config(), num_parameters=5_600_258)
    assert "| width | 192 |" in text
    assert "| tokens per region after each merge | 64, 64 |" in text
    assert "| classes | 100 |" in text
    assert "| parameters | 5,600,258 |" in text


def test_read_results_merges_trainer_files(tmp_path):
    assert read_results(tmp_path) is None
    (tmp_path / "train_results.json").write_text(json.dumps({"train_loss": 2.0, "epoch": 3.0}))
    (tmp_path / "eval_results.json").write_text(json.dumps({"eval_top1_accuracy": 0.4, "epoch": 3.0}))
    (tmp_path / "all_results.json").write_text(json.dumps({"eval_top1_accuracy": 0.5}))
    results = read_results(tmp_path)
    assert results == {"train_loss": 2.0, "epoch": 3.0, "eval_top1_accuracy": 0.5}
    assert find_metric(results, ("top1_accuracy",)) == ("eval_top1_accuracy", 0.5)
    assert find_metric(results, ("top5_accuracy",)) is None


def test_history_table_and_picture():
    history = [
        {"epoch": 1, "step": 10, "train_loss": 2, "learning_rate": 1e-6, "eval_loss": 1.5, "eval_top1_accuracy": 0.25},
        {"epoch": 2, "step": 20, "train_loss": 1.0, "learning_rate": 1e-3, "eval_loss": 0.9, "eval_top1_accuracy": 0.5},
        {"epoch": 3, "step": 30, "train_loss": 0.5, "learning_rate": 5e-4},  # no evaluation that epoch
    ]
    text = render_model_card(model_name="m", config=config(), summary={"history": history, "curves": "curves.png"})
    lines = text.splitlines()
    header = lines.index("| epoch | step | training loss | learning rate | held-out loss | held-out top-1 |")
    assert lines[header + 2 : header + 5] == [
        "| 1 | 10 | 2 | 1e-06 | 1.5 | 0.25 |",
        "| 2 | 20 | 1 | 0.001 | 0.9 | 0.5 |",
        "| 3 | 30 | 0.5 | 0.0005 |  |  |",
    ]
    assert "![Training loss, learning rate and held-out top-1 per epoch](curves.png)" in lines


def test_explanations_picture_has_its_section_only_when_there_is_one():
    text = render_model_card(model_name="m", config=config(), summary={"explanations": "explanations.png"})
    lines = text.splitlines()
    assert "## What the model looks at" in lines
    picture = "![A few held-out images: class-token saliency, top predictions and each merge's scale mix]"
    assert f"{picture}(explanations.png)" in lines
    assert "What the model looks at" not in render_model_card(model_name="m", config=config(), summary={})


def test_dataset_and_recipe_tables():
    summary = {
        "dataset": {"name": "uoft-cs/cifar100", "train_images": 50000, "held_out_images": 10000, "classes": 100},
        "recipe": {"stage": "pretrain", "epochs": 800, "mixup | cutmix": "0.8 | 1.0", "unset": None},
        "base_model": "me/dems-pretrain",
    }
    text = render_model_card(model_name="m", config=config(), summary=summary)
    for row in (
        "| data set | uoft-cs/cifar100 |",
        "| training images | 50000 |",
        "| held-out images | 10000 |",
        "| classes | 100 |",
        "| stage | pretrain |",
        "| epochs | 800 |",
        "| mixup \\| cutmix | 0.8 \\| 1.0 |",
    ):
        assert row in text.splitlines(), row
    assert "unset" not in text
    assert ModelCard(text).data.to_dict()["base_model"] == "me/dems-pretrain"
