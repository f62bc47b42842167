"""Top-1 / top-5 accuracy through `evaluate`, from the project's metric module loaded by path (no Hub)."""

import numpy as np
import torch
from transformers import EvalPrediction

from dems_training.metrics import TOP_K_ACCURACY_PATH, TopKAccuracy, load_top_k_accuracy


def test_metric_module_loads_from_its_folder_and_counts_hits():
    metric = load_top_k_accuracy()
    assert TOP_K_ACCURACY_PATH.endswith("top_k_accuracy")
    result = metric.compute(predictions=[[2, 0, 1], [1, 2, 0], [0, 1, 2]], references=[0, 1, 2], top_k=[1, 2, 3])
    assert result == {"top1_accuracy": 1 / 3, "top2_accuracy": 2 / 3, "top3_accuracy": 1.0}


def test_metric_ranks_logits_itself_with_from_logits():
    metric = load_top_k_accuracy()
    logits = [[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]
    assert metric.compute(predictions=logits, references=[1, 2], top_k=[1, 2], from_logits=True) == {
        "top1_accuracy": 0.5,
        "top2_accuracy": 1.0,
    }


def test_trainer_hooks_keep_top5_ids_and_report_both_accuracies():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 10, generator=generator)
    labels = torch.randint(0, 10, (50,), generator=generator)
    ranked = TopKAccuracy.keep_top_k(logits, labels)
    assert ranked.shape == (50, 5)
    metrics = TopKAccuracy()(EvalPrediction(predictions=ranked.numpy(), label_ids=labels.numpy()))
    expected_top1 = (logits.argmax(1) == labels).float().mean().item()
    expected_top5 = (logits.topk(5).indices == labels[:, None]).any(1).float().mean().item()
    assert np.isclose(metrics["top1_accuracy"], expected_top1) and np.isclose(metrics["top5_accuracy"], expected_top5)


def test_fewer_classes_than_k_counts_every_class():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    ranked = TopKAccuracy.keep_top_k(logits, None)
    metrics = TopKAccuracy()(EvalPrediction(predictions=ranked.numpy(), label_ids=np.array([0, 0])))
    assert metrics == {"top1_accuracy": 0.5, "top5_accuracy": 1.0}
