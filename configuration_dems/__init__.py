"""Configuration of DEMS-ViT, the data-efficient multi-scale fusion vision transformer.

The class is defined in `modeling_dems/configuration_dems.py`, beside the model, so that transformers' remote-code
export (`custom_object_save`) finds it next to the modeling file; this package re-exports it under its own name.
"""

from modeling_dems.configuration_dems import DEMS_PRESETS, DemsConfig


__all__ = ["DEMS_PRESETS", "DemsConfig"]
