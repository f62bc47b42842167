"""scikit-learn's 1,797 real 8x8 handwritten digits as `datasets` splits of grey PIL images: a data set that ships
with the project's dependencies, so that `train.py` runs with no network at all."""

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage


DIGITS_TEST_FRACTION = 0.2
# The split is fixed (not tied to --seed) so that held-out accuracies from different runs are comparable.
DIGITS_SPLIT_SEED = 0


def load_digits_dataset() -> DatasetDict:
    """Return {"train": 1,437 images, "test": 360 images}, stratified by class, columns `image` (8x8 grey PIL) and
    `label` (`ClassLabel` with names "0".."9")."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # Pixel values are ink counts 0..16; scale them to 0..255 grey levels.
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})

    def split(indices):
        return Dataset.from_dict(
            {"image": [PILImage.fromarray(images[i]) for i in indices], "label": labels[indices].tolist()},
            features=features,
        )

    return DatasetDict(train=split(train_idx), test=split(test_idx))
