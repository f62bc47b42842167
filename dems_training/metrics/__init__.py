"""Top-1 / top-5 accuracy through `evaluate`, from the metric module shipped in this folder.

`evaluate.load("accuracy")` downloads its script from the Hub and fails offline; `evaluate.load(<local folder>)`
reads the module from disk, so the metric works with no network."""

import os

import evaluate
import numpy as np


TOP_K_ACCURACY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "top_k_accuracy")


def load_top_k_accuracy(**kwargs) -> evaluate.EvaluationModule:
    return evaluate.load(TOP_K_ACCURACY_PATH, **kwargs)


class TopKAccuracy:
    """`compute_metrics` for Trainer: {"top1_accuracy", "top5_accuracy"} from logits and integer labels.

    Trainer passes logits reduced by `keep_top_k` (see below), i.e. the ranked ids of the best classes."""

    def __init__(self, top_k=(1, 5)):
        self.top_k = tuple(top_k)
        self.metric = load_top_k_accuracy()

    def __call__(self, eval_prediction) -> dict:
        ranked, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(ranked, tuple):
            ranked = ranked[0]
        return self.metric.compute(predictions=np.asarray(ranked), references=np.asarray(labels), top_k=self.top_k)

    @staticmethod
    def keep_top_k(logits, labels, k: int = 5):
        """`preprocess_logits_for_metrics`: keep the ids of the k best classes instead of all logits, so that
        evaluation on many classes does not gather (N, num_labels) floats."""
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.topk(min(k, logits.shape[-1]), dim=-1).indices
