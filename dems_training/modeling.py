"""The model and image processor `train.py` trains: new from a preset, or loaded from a folder, a Hub id or a
reference `.pth` checkpoint, always labelled with the data set's classes. `--architecture vit` builds transformers'
own ViT (DeiT's model without distillation) matched to the DEMS config instead: the baseline the paper beats."""

import logging
import os

from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    ViTConfig,
    ViTForImageClassification,
)

import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes)
from configuration_dems import DEMS_PRESETS, DemsConfig
from modeling_dems import DemsForImageClassification, DemsImageProcessor
from modeling_dems.convert import ReferenceCheckpointError, load_reference_checkpoint

from . import UserInputError
from .augmentation.transforms import MODE_FOR_CHANNELS
from .config_overrides import parse_config_overrides


logger = logging.getLogger(__name__)


def label_fields(class_names: list[str]) -> dict:
    """The config fields that name the classes: their count and both directions of the id <-> name map."""
    return {
        "num_labels": len(class_names),
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: i for i, name in enumerate(class_names)},
    }


def training_label_fields(class_names: list[str]) -> dict:
    """`label_fields` for a model this project trains: soft mixup / cutmix targets are read as soft cross-entropy
    only under the single-label problem type."""
    return {**label_fields(class_names), "problem_type": "single_label_classification"}


def processor_for_config(config, image_mean=None, image_std=None, **settings) -> DemsImageProcessor:
    """The image processor a model of `config` was built for (resize to its image size, bicubic as the reference's
    evaluation; its channel count), normalised with `image_mean` / `image_std` (default: ImageNet's). One value
    stands for every channel; it is passed as a number, since transformers wants a list as long as the channels.
    `settings` add or replace processor settings (e.g. a centre crop)."""
    normalisation = {"image_mean": image_mean, "image_std": image_std}
    normalisation = {k: v[0] if len(v) == 1 else list(v) for k, v in normalisation.items() if v is not None}
    return DemsImageProcessor.from_model_config(config, **normalisation, **settings)


ARCHITECTURES = ("dems", "vit")


def vit_config_matching(config: DemsConfig) -> ViTConfig:
    """transformers' ViT with DEMS's width, depth, heads, MLP ratio and dropouts, its patch size the finest DEMS
    patch and its input the same images; labels are carried over. Stochastic depth has no ViT counterpart."""
    ratios = set(config.mlp_ratios)
    if len(ratios) != 1:
        raise UserInputError(
            f"--architecture vit: the DEMS config has mlp_ratios={config.mlp_ratios}, one per stage; a ViT has one "
            "MLP ratio, so they must all be equal."
        )
    return ViTConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.num_channels,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=int(config.hidden_size * ratios.pop()),
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        qkv_bias=config.qkv_bias,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        num_labels=config.num_labels,
        id2label=config.id2label,
        label2id=config.label2id,
        problem_type=config.problem_type,
    )


def supported_drop_path_rate(architecture: str, drop_path_rate: float) -> float:
    """The stochastic depth `architecture` applies: transformers' ViT has none, so it trains with 0 (and the model
    card says so) whatever the recipe asked."""
    if architecture == "vit" and drop_path_rate:
        logger.warning(f"--architecture vit: transformers' ViT has no stochastic depth, so --drop_path_rate="
                       f"{drop_path_rate} is not applied (the model card says 0).")
        return 0.0
    return drop_path_rate


def check_model_arguments(model_args, recipe_args, dataset_entry) -> None:
    """The checks of the model arguments that need no data, made before the data loads, so that a mistyped
    architecture, preset or override (a channel count train.py cannot train included) fails at once rather than
    after a download. `build_model` makes them again as it builds; a saved model's channels are checked there."""
    check_architecture(model_args)
    if model_args.model_name_or_path is None:
        config = new_model_config(model_args, recipe_args, dataset_entry, class_names=None)
        if model_args.architecture == "vit":
            vit_config_matching(config)  # refuses a config no ViT matches
        refuse_untrainable_channels(config.num_channels, "--config_overrides")


def check_architecture(model_args) -> None:
    """--architecture is known, and a reference .pth (a DEMS model) starts a DEMS model only."""
    path = model_args.model_name_or_path
    if model_args.architecture not in ARCHITECTURES:
        raise UserInputError(f"--architecture={model_args.architecture!r} must be one of {ARCHITECTURES}.")
    if model_args.architecture == "vit" and path is not None and path.endswith(".pth"):
        raise UserInputError(f"--model_name_or_path={path!r} is a DEMS reference checkpoint; it cannot start a "
                             "--architecture vit model.")


def regularisation_fields(recipe_args) -> dict:
    """The config fields the recipe sets on any model, new or loaded."""
    return {
        "drop_path_rate": recipe_args.drop_path_rate,
        "attention_probs_dropout_prob": recipe_args.attention_probs_dropout_prob,
    }


def new_model_config(model_args, recipe_args, dataset_entry, class_names: list[str] | None) -> DemsConfig:
    """The config of a new model: the data set's model preset and shape (`dataset_entry`, data/table.py) unless
    --model_preset names another, with --config_overrides and the recipe's regularisation; labelled with
    `class_names` (None: not labelled, for `check_model_arguments`)."""
    name = model_args.model_preset or dataset_entry.model_preset
    if name not in DEMS_PRESETS:
        raise UserInputError(f"--model_preset={name!r} is not a DEMS preset; choose one of {sorted(DEMS_PRESETS)}.")
    # The data set's shape adjustments go with its default preset only: a preset the user names is taken as is.
    shape = dataset_entry.config_overrides if model_args.model_preset is None else {}
    labels = training_label_fields(class_names) if class_names is not None else {}
    fields = {**shape, **parse_config_overrides(model_args.config_overrides), **regularisation_fields(recipe_args)}
    try:
        return DemsConfig.from_preset(name, **fields, **labels)
    except (ValueError, TypeError, StrictDataclassError) as error:
        raise UserInputError(f"--model_preset={name!r} with --config_overrides: {error}") from None


def refuse_untrainable_channels(channels: int, source: str) -> None:
    """train.py's augmentation makes grey or RGB images only; `source` is the option that asked for `channels`."""
    if channels not in MODE_FOR_CHANNELS:
        raise UserInputError(
            f"{source} makes a model of num_channels={channels}, but train.py trains models of "
            f"{' or '.join(map(str, MODE_FOR_CHANNELS))} channels (grey or RGB: the images its augmentation makes); "
            "modeling_dems builds and runs other channel counts, train.py cannot train them."
        )


def build_model(model_args, recipe_args, dataset_entry, class_names: list[str]):
    """A `DemsForImageClassification`, or a `ViTForImageClassification` for a new `--architecture vit` model, new
    (`new_model_config`) or loaded from --model_name_or_path, labelled with `class_names`."""
    path = model_args.model_name_or_path
    check_architecture(model_args)
    overrides = parse_config_overrides(model_args.config_overrides)
    regularisation = regularisation_fields(recipe_args)
    if path is None:
        config = new_model_config(model_args, recipe_args, dataset_entry, class_names)
        if model_args.architecture == "vit":
            model = ViTForImageClassification(vit_config_matching(config))
        else:
            model = DemsForImageClassification(config)
    elif path.endswith(".pth"):
        if not os.path.isfile(path):
            raise UserInputError(f"--model_name_or_path={path!r}: no such reference checkpoint file.")
        try:
            model = load_reference_checkpoint(path, preset=model_args.model_preset, **{**overrides, **regularisation})
        except ReferenceCheckpointError as error:
            raise UserInputError(f"--model_name_or_path={path!r}: {error}") from None
        if model.config.num_labels != len(class_names):
            if not model_args.ignore_mismatched_sizes:
                raise UserInputError(
                    f"--model_name_or_path={path!r} has a {model.config.num_labels}-class head but the data has "
                    f"{len(class_names)} classes; pass --ignore_mismatched_sizes to train a new head."
                )
            model.reset_classifier(len(class_names), id2label=dict(enumerate(class_names)))
        model.config.update(training_label_fields(class_names))
        model.train()
    elif os.path.isfile(path):
        raise UserInputError(
            f"--model_name_or_path={path!r} is a file; give a folder saved by train.py or save_pretrained, a Hub id, "
            "or a reference checkpoint ending in .pth."
        )
    else:
        hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
        try:
            saved = AutoConfig.from_pretrained(path, **hub)
            if saved.num_labels != len(class_names) and not model_args.ignore_mismatched_sizes:
                raise UserInputError(
                    f"--model_name_or_path={path!r} has a {saved.num_labels}-class head but the data has "
                    f"{len(class_names)} classes; pass --ignore_mismatched_sizes to train a new head."
                )
            config = AutoConfig.from_pretrained(path, **hub, **regularisation, **training_label_fields(class_names))
            model = AutoModelForImageClassification.from_pretrained(
                path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub
            )
        except OSError as error:  # not a folder, not reachable on the Hub, no weights, config.json not JSON
            raise UserInputError(
                f"--model_name_or_path={path!r} cannot be loaded ({str(error).splitlines()[0]}). Give a folder "
                "saved by train.py or save_pretrained, a reachable Hub id, or a reference .pth file."
            ) from None
        except (StrictDataclassError, SafetensorError) as error:  # a config field of the wrong type; torn weights
            raise UserInputError(f"--model_name_or_path={path!r} cannot be loaded: {error}") from None
    source = f"--model_name_or_path={path!r}" if path is not None else "--config_overrides"
    refuse_untrainable_channels(model.config.num_channels, source)
    return model


def build_image_processor(model_name_or_path: str | None, config, dataset_entry) -> DemsImageProcessor:
    """The checkpoint's processor when it has one, else one for the config and the data set's normalisation and
    processor settings (`dataset_entry`, data/table.py)."""
    if model_name_or_path and not model_name_or_path.endswith(".pth"):
        try:
            return AutoImageProcessor.from_pretrained(model_name_or_path)
        except (OSError, ValueError):
            logger.info(f"{model_name_or_path} has no image processor; building one from the config")
    return processor_for_config(
        config, dataset_entry.image_mean, dataset_entry.image_std, **dataset_entry.processor_overrides
    )
