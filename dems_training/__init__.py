"""Training-side pieces of DEMS-ViT used by `train.py`: data set presets and loading, the augmentation schedule,
the mixup/cutmix collator, the top-k metric and the Trainer callbacks."""


class UserInputError(ValueError):
    """A problem with what the user asked for (a flag, a data set, a file): `train.py` prints its message in one
    line and exits before training starts, without a stack trace."""
