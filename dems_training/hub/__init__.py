"""Sharing a model on the Hugging Face Hub (`push_to_hub.py`, `train.py --push_to_hub`).

    source.py      what is read and checked before anything is written: the model folder or .pth, the processor,
                   the labels
    model_card.py  the model card (README.md with Hub metadata), rendered from a run summary
    export.py      the repository folder built from a source, verified, written or uploaded in one commit
"""
