"""What the model sees: the images as the recipe transforms them, on the CPU and on the training device.

    schedule.py    the augmentation schedule (the paper's decaying probabilities) and the callback that moves it
    transforms.py  per-image transforms: the CPU augmentation, random crop + flip, resize + normalise, the processor
    image_ops.py   the per-image colour and resize operations on uint8, each the PIL operation it stands for
    on_device.py   the device augmentation: colour, normalisation and mixing batched on the training device
    mixup.py       batch mixup / cutmix with label smoothing
    pipeline.py    the input pipeline: every piece above put together for one run
"""
