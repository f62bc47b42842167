"""The data a run trains on.

    table.py         the data-set table: one entry per data set (where it lives and how the reference trains on it)
    loading.py       `load_data`: train and held-out `datasets.Dataset`s from any source, columns and labels checked
    subsets.py       class-balanced train subsets and the validation set set aside before them
    digits.py        scikit-learn's handwritten digits, the offline data set
    idx.py           MNIST-format releases (IDX files), read offline
    image_folder.py  local image folders (one sub-folder per class), broken files found before training
    torch_data.py    a `datasets.Dataset` seen through a transform, as the torch Dataset Trainer reads
"""
