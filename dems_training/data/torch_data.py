"""A `datasets.Dataset` seen through a transform, as a map-style torch Dataset of {"pixel_values", "labels"}."""

import random
from collections.abc import Callable

import torch
from transformers import TrainerCallback


class TransformedImageDataset(torch.utils.data.Dataset):
    """Decodes row i's image and applies `transform` (PIL image -> (C, S, S) tensor). Kept as a plain torch
    Dataset rather than `datasets.set_transform` so that the transform object, with its shared epoch, is what the
    workers hold."""

    def __init__(self, dataset, image_column: str, label_column: str, transform: Callable, seed: int | None = None):
        self.dataset = dataset
        self.image_column, self.label_column = image_column, label_column
        self.transform = transform
        # With a seed, image i of epoch e is augmented from Python's `random` seeded by (seed, e, i): its draws do not
        # depend on what ran before it (a model's own use of the generators, a resume, the number of workers).
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()  # read by every worker

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def item(self, index: int, image, label) -> dict:
        if self.seed is not None:
            random.seed(f"{self.seed}:{int(self._epoch[0])}:{index}")
        return {"pixel_values": self.transform(image), "labels": int(label)}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        return self.item(int(index), row[self.image_column], row[self.label_column])

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's rows in one read (torch's DataLoader calls this when it exists): one Arrow lookup per batch
        instead of one per image, which at 32 px costs about as much as decoding the image."""
        rows = self.dataset[[int(i) for i in indices]]
        images, labels = rows[self.image_column], rows[self.label_column]
        return [
            self.item(int(index), image, label)
            for index, image, label in zip(indices, images, labels, strict=True)
        ]


class DatasetEpochCallback(TrainerCallback):
    """Tell a `TransformedImageDataset` the epoch Trainer starts (on resume, the epoch of the checkpoint)."""

    def __init__(self, dataset: TransformedImageDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(state.epoch or 0))
