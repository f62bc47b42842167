"""A `datasets.Dataset` seen through a transform, as a map-style torch Dataset of {"pixel_values", "labels"}."""

from collections.abc import Callable

import torch


class TransformedImageDataset(torch.utils.data.Dataset):
    """Decodes row i's image and applies `transform` (PIL image -> (C, S, S) tensor). Kept as a plain torch
    Dataset rather than `datasets.set_transform` so that the transform object, with its shared epoch, is what the
    workers hold."""

    def __init__(self, dataset, image_column: str, label_column: str, transform: Callable):
        self.dataset = dataset
        self.image_column, self.label_column = image_column, label_column
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        return {"pixel_values": self.transform(row[self.image_column]), "labels": int(row[self.label_column])}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's rows in one read (torch's DataLoader calls this when it exists): one Arrow lookup per batch
        instead of one per image, which at 32 px costs about as much as decoding the image."""
        rows = self.dataset[[int(i) for i in indices]]
        images, labels = rows[self.image_column], rows[self.label_column]
        return [
            {"pixel_values": self.transform(image), "labels": int(label)}
            for image, label in zip(images, labels, strict=True)
        ]


class ProcessorTransform:
    """The image processor as a per-image transform: the eval path is exactly what `pipeline` will do."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image) -> torch.Tensor:
        return self.image_processor(image, return_tensors="pt")["pixel_values"][0]
