"""Configuration of DEMS-ViT, the data-efficient multi-scale fusion vision transformer."""

from .configuration_dems import DEMS_PRESETS, DemsConfig


__all__ = ["DEMS_PRESETS", "DemsConfig"]
