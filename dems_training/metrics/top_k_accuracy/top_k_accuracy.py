"""Top-k accuracy, an `evaluate` metric module loaded by path (see dems_training/metrics/__init__.py)."""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Top-k accuracy: the fraction of examples whose true class is among the k classes the model ranks highest.
`predictions` are either ranked class ids, best first (shape (N, m), m >= k; e.g. `logits.topk(m).indices`) or
logits / scores over all classes when `from_logits=True` (shape (N, num_classes)). A k larger than the number of
ranked classes is reported over the classes available (so top-5 on a 3-class problem is 1.0).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]` or `list[list[float]]`): ranked class ids, or scores with `from_logits=True`.
    references (`list[int]`): true class ids.
    top_k (`list[int]`, defaults to `[1, 5]`): the k values to report.
    from_logits (`bool`, defaults to `False`): whether `predictions` are scores over all classes.
Returns:
    `dict`: `top{k}_accuracy` for each k, a float in [0, 1].
Examples:
    >>> metric = evaluate.load("dems_training/metrics/top_k_accuracy")
    >>> metric.compute(predictions=[[2, 0], [1, 2]], references=[0, 1], top_k=[1, 2])
    {'top1_accuracy': 0.5, 'top2_accuracy': 1.0}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # One float feature for both forms: class ids are exact in float32 (below 2**24), and a second, int
            # feature would be picked for float scores too and truncate them.
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, top_k=(1, 5), from_logits=False):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.ndim != 2 or len(predictions) != len(references):
            raise ValueError(
                f"predictions must have shape (N, m) with N = len(references) = {len(references)}; got "
                f"{predictions.shape}."
            )
        if from_logits:
            ranked = np.argsort(-predictions, axis=1, kind="stable")
        else:
            ranked = np.rint(predictions).astype(np.int64)
        results = {}
        for k in top_k:
            if k < 1:
                raise ValueError(f"top_k={list(top_k)}: every k must be >= 1.")
            hits = (ranked[:, :k] == references[:, None]).any(axis=1)
            results[f"top{k}_accuracy"] = float(hits.mean()) if len(hits) else 0.0
        return results
