"""What a trained DEMS model looks at: the class-token saliency through the merges and each merge's scale mix,
computed for images (explanations.py) and drawn (plots.py) for `explain.py` and the model card."""
