"""DEMS-ViT for Hugging Face transformers.

Importing this package registers the model with the Auto classes in two ways:
- locally, so that `AutoConfig`, `AutoModel`, `AutoModelForImageClassification`, `AutoImageProcessor` and
  `pipeline("image-classification")` load saved DEMS checkpoints without `trust_remote_code` and without a prompt
  (`AutoVideoProcessor` is told that DEMS has no video processor);
- for remote code (`register_for_auto_class`), so that `save_pretrained` and `push_to_hub` write the configuration,
  modeling and image-processing files beside the weights and name them in `auto_map`: the folder then loads with
  `trust_remote_code=True` where this project is not installed.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

# From its module: without torchvision the top-level name is a placeholder that raises, but the pipeline uses this
# class (and its registry) whether or not torchvision is installed.
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

from .configuration_dems import DEMS_PRESETS, DemsConfig
from .image_processing_dems import DemsImageProcessor
from .modeling_dems import DemsForImageClassification, DemsModel, DemsPreTrainedModel


AutoConfig.register(DemsConfig.model_type, DemsConfig, exist_ok=True)
AutoModel.register(DemsConfig, DemsModel, exist_ok=True)
AutoModelForImageClassification.register(DemsConfig, DemsForImageClassification, exist_ok=True)
AutoImageProcessor.register(DemsConfig, image_processor_classes={"pil": DemsImageProcessor}, exist_ok=True)
# DEMS has no video processor, on any backend; said here so that transformers need not guess one. Unclaimed, the
# `pipeline`'s optional video-processor lookup derives `image_processing_dems.DemsVideoProcessor` from the
# processor's `auto_map` and, finding no local class for it, asks "Do you wish to run the custom code?" (in a
# script whose standard input stays open it waits 15 seconds for the answer).
AutoVideoProcessor.register(DemsConfig, video_processor_classes={}, exist_ok=True)

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
