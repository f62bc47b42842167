"""DEMS-ViT for Hugging Face transformers.

Importing this package registers the model with the Auto classes, so that `AutoConfig`, `AutoModel`,
`AutoModelForImageClassification`, `AutoImageProcessor` and `pipeline("image-classification")` load saved DEMS
checkpoints without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from configuration_dems import DEMS_PRESETS, DemsConfig

from .image_processing_dems import DemsImageProcessor
from .modeling_dems import DemsForImageClassification, DemsModel, DemsPreTrainedModel


AutoConfig.register(DemsConfig.model_type, DemsConfig, exist_ok=True)
AutoModel.register(DemsConfig, DemsModel, exist_ok=True)
AutoModelForImageClassification.register(DemsConfig, DemsForImageClassification, exist_ok=True)
AutoImageProcessor.register(DemsConfig, image_processor_classes={"pil": DemsImageProcessor}, exist_ok=True)

__all__ = [
    "DEMS_PRESETS",
    "DemsConfig",
    "DemsForImageClassification",
    "DemsImageProcessor",
    "DemsModel",
    "DemsPreTrainedModel",
]
