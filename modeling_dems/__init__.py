"""DEMS-ViT for Hugging Face transformers.

Importing this package registers the model with the Auto classes in two ways:
- locally, so that `AutoConfig`, `AutoModel`, `AutoModelForImageClassification`, `AutoImageProcessor` and
  `pipeline("image-classification")` load saved DEMS checkpoints without `trust_remote_code`;
- for remote code (`register_for_auto_class`), so that `save_pretrained` and `push_to_hub` write the configuration,
  modeling and image-processing files beside the weights and name them in `auto_map`: the folder then loads with
  `trust_remote_code=True` where this project is not installed.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from .configuration_dems import DEMS_PRESETS, DemsConfig
from .image_processing_dems import DemsImageProcessor
from .modeling_dems import DemsForImageClassification, DemsModel, DemsPreTrainedModel


AutoConfig.register(DemsConfig.model_type, DemsConfig, exist_ok=True)
AutoModel.register(DemsConfig, DemsModel, exist_ok=True)
AutoModelForImageClassification.register(DemsConfig, DemsForImageClassification, exist_ok=True)
AutoImageProcessor.register(DemsConfig, image_processor_classes={"pil": DemsImageProcessor}, exist_ok=True)

DemsConfig.register_for_auto_class("AutoConfig")
DemsModel.register_for_auto_class("AutoModel")
DemsForImageClassification.register_for_auto_class("AutoModelForImageClassification")
DemsImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "DEMS_PRESETS",
    "DemsConfig",
    "DemsForImageClassification",
    "DemsImageProcessor",
    "DemsModel",
    "DemsPreTrainedModel",
]
