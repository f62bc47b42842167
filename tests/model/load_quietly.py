"""Run in a fresh interpreter by test_load_without_prompt.py: load a saved DEMS folder one documented way and print
one JSON line, {"class": ..., "seconds": ...}, the seconds being the load's alone (not the imports').

Usage: python -I load_quietly.py local|remote WAY FOLDER
    local:  `import modeling_dems` first, then no trust_remote_code (the README's way);
    remote: the project out of reach (as push_isolated_load.py hides it), trust_remote_code=True (the model card's).
    WAY: AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification or pipeline.
"""

import json
import os
import sys
import time


def main(mode: str, way: str, folder: str) -> None:
    kwargs = {}
    if mode == "local":
        sys.path.insert(0, os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
        import modeling_dems  # noqa: F401
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hub"))
        from push_isolated_load import hide_project

        hide_project()
        kwargs["trust_remote_code"] = True
    # Imported before the clock starts, in both modes (`import modeling_dems` imports most of them): the seconds
    # measured are the load's, which a prompt would stretch, not the first import of transformers' modules.
    import transformers
    import transformers.pipelines  # noqa: F401
    from transformers import PreTrainedModel  # noqa: F401

    if way == "pipeline":
        load = lambda: transformers.pipeline("image-classification", model=folder, **kwargs)  # noqa: E731
    else:
        load = lambda: getattr(transformers, way).from_pretrained(folder, **kwargs)  # noqa: E731
    start = time.perf_counter()
    loaded = load()
    seconds = time.perf_counter() - start
    print(json.dumps({"class": type(loaded).__name__, "seconds": seconds}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
