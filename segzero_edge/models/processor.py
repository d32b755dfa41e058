"""Qwen2.5-VL / Qwen2-VL processors without the video processor.

transformers 5.x builds these processors with a torchvision video processor (and, through
`AutoProcessor`, a torchvision "fast" image processor); torchvision is not part of this
project. Here the processor gets only what reasoning segmentation uses: the PIL/numpy image
processor (`Qwen2VLImageProcessorPil`, the 5.x name of the slow `Qwen2VLImageProcessor`),
the tokenizer and the chat template. Text and image outputs are unchanged: `<|image_pad|>`
expands to grid_t*grid_h*grid_w / merge_size**2 tokens, exactly as in the stock processor.

A processor's sub-processors are the `__init__` parameters whose names contain a modality
(`ProcessorMixin.get_attributes`), so the subclasses below, whose `__init__` takes only
`image_processor` and `tokenizer`, are complete processors with no video slot. Nothing in
transformers is patched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)
from transformers.utils import cached_file

# from_pretrained kwargs that locate files (shared by the image processor, tokenizer and
# template lookups); every other kwarg overrides the image processor (e.g. min_pixels).
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "revision", "token", "subfolder", "proxies")


class Qwen2_5_VLImageTextProcessor(Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` with image and text only (no video processor, no torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent forwards video_processor=None positionally; ProcessorMixin pairs
        # positional args with get_attributes() == [image_processor, tokenizer] and drops it.
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)


class Qwen2VLImageTextProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` with image and text only (no video processor, no torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)


_CLASSES: dict[str, type[Qwen2_5_VLProcessor] | type[Qwen2VLProcessor]] = {
    "qwen2_5_vl": Qwen2_5_VLImageTextProcessor,
    "qwen2_vl": Qwen2VLImageTextProcessor,
}
_STOCK_NAMES = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen2_vl": "Qwen2VLProcessor"}


def _read_json(path_or_id: str, filename: str, hub: dict[str, Any]) -> dict[str, Any] | None:
    path = cached_file(path_or_id, filename, _raise_exceptions_for_missing_entries=False, **hub)
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _model_type(path_or_id: str, hub: dict[str, Any]) -> str:
    """'qwen2_5_vl' or 'qwen2_vl', from config.json, else from the preprocessor's processor_class."""
    config = _read_json(path_or_id, "config.json", hub) or {}
    model_type = config.get("model_type")
    if model_type is None:
        pre = _read_json(path_or_id, "preprocessor_config.json", hub) or {}
        by_class = {v: k for k, v in _STOCK_NAMES.items()}
        model_type = by_class.get(pre.get("processor_class", ""), "qwen2_5_vl")
    if model_type not in _CLASSES:
        raise ValueError(
            f"{path_or_id}: model_type {model_type!r} is not a Qwen2-VL family model; "
            f"load_processor supports {sorted(_CLASSES)}"
        )
    return model_type


def _chat_template(path_or_id: str, tokenizer: PreTrainedTokenizerBase, hub: dict[str, Any]) -> str | None:
    """The processor's template: chat_template.jinja, else legacy chat_template.json, else the tokenizer's."""
    path = cached_file(path_or_id, "chat_template.jinja", _raise_exceptions_for_missing_entries=False, **hub)
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    legacy = _read_json(path_or_id, "chat_template.json", hub)
    if legacy is not None and isinstance(legacy.get("chat_template"), str):
        return legacy["chat_template"]
    return tokenizer.chat_template


def load_processor(
    path_or_id: str | os.PathLike[str], *, trust_remote_code: bool = False, **kwargs: Any
) -> Qwen2_5_VLImageTextProcessor | Qwen2VLImageTextProcessor:
    """Load a Qwen2.5-VL (or Qwen2-VL) processor from a local directory or a Hub id, without
    the video processor: `Qwen2VLImageProcessorPil` + `AutoTokenizer` + the chat template.

    kwargs: file-location options (`revision`, `cache_dir`, `token`, `local_files_only`, ...)
    apply to every file; anything else overrides the image processor (e.g. `max_pixels`).
    """
    src = os.fspath(path_or_id)
    hub = {k: kwargs.pop(k) for k in _HUB_KWARGS if k in kwargs}
    model_type = _model_type(src, hub)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(src, **hub, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code, **hub)
    chat_template = _chat_template(src, tokenizer, hub)
    if chat_template is None:
        raise ValueError(f"{src}: no chat template (chat_template.jinja/.json or tokenizer_config.json)")
    return _CLASSES[model_type](image_processor, tokenizer, chat_template=chat_template)


def save_processor(
    processor: Qwen2_5_VLProcessor | Qwen2VLProcessor, out_dir: str | os.PathLike[str]
) -> Path:
    """Save in the Hub layout (preprocessor_config.json, tokenizer files, chat_template.jinja) so
    `load_processor(out_dir)` and stock transformers loaders read it back. Returns `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor.image_processor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    if processor.chat_template is not None:
        (out / "chat_template.jinja").write_text(processor.chat_template, encoding="utf-8")
    # Name the stock processor class, as Hub checkpoints do, so AutoProcessor users are not
    # pointed at our subclass.
    model_type = "qwen2_5_vl" if isinstance(processor, Qwen2_5_VLProcessor) else "qwen2_vl"
    pre_path = out / "preprocessor_config.json"
    pre = json.loads(pre_path.read_text(encoding="utf-8"))
    pre["processor_class"] = _STOCK_NAMES[model_type]
    pre_path.write_text(json.dumps(pre, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
