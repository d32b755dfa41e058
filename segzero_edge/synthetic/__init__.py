"""A procedural, seed-deterministic reasoning-segmentation domain of coloured shapes.

Scenes (`render_scene`) hold 2-7 shapes with exact visible-pixel instance masks;
queries (`make_queries`) need reasoning (sizes, spatial relations, uniqueness,
attribute combinations, counting, function hints) and have exactly one answer;
`generate_split` / `write_dataset` produce train/val/test splits with disjoint seeds
and a zero-shot split of held-out templates, in ReasonSeg's Hugging Face layout.

numpy + pillow only (scipy for the reference points, pyarrow to write parquet, both
imported lazily): no torch.
"""

from .dataset import (
    DEFAULT_SIZES,
    GENERATOR_VERSION,
    SPLITS,
    Sample,
    SynthConfig,
    encode_png,
    generate_split,
    split_seed,
    split_templates,
    write_dataset,
)
from .hints import HINTS
from .language import Query
from .preview import render_preview
from .queries import (
    SegZeroAnswer,
    answer_for,
    format_completion,
    make_queries,
    mask_to_reasoner,
    solution_string,
)
from .registry import FAMILIES, Template
from .scene import COLOURS, SHAPES, Scene, SceneConfig, SceneObject, render_scene
from .templates import SEEN_TEMPLATES, TEMPLATES, ZEROSHOT_TEMPLATES

__all__ = [
    "COLOURS",
    "DEFAULT_SIZES",
    "FAMILIES",
    "GENERATOR_VERSION",
    "HINTS",
    "SEEN_TEMPLATES",
    "SHAPES",
    "SPLITS",
    "TEMPLATES",
    "ZEROSHOT_TEMPLATES",
    "Query",
    "Sample",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "SegZeroAnswer",
    "SynthConfig",
    "Template",
    "answer_for",
    "encode_png",
    "format_completion",
    "generate_split",
    "make_queries",
    "mask_to_reasoner",
    "render_preview",
    "render_scene",
    "solution_string",
    "split_seed",
    "split_templates",
    "write_dataset",
]
