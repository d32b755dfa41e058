"""The project's own small Qwen-style tokenizer, trained deterministically on an embedded corpus.

It copies Qwen2's pipeline (NFC normaliser, Qwen2's split regex, byte-level BPE with all 256
bytes in the alphabet, so any text round-trips) and appends Qwen2.5-VL's special tokens in
Qwen's order. `<think>`/`<answer>` tags stay ordinary text, as in the real tokenizer.
Only `tokenizers` is imported here: no torch, no transformers.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: Qwen2's pre-tokenisation regex (digits split one by one, contractions kept).
PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

#: Qwen2.5-VL's special tokens, in the order Qwen assigns their ids.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
PAD_TOKEN = "<|endoftext|>"
EOS_TOKEN = "<|im_end|>"
DEFAULT_SYSTEM = "You are a helpful assistant."

#: Qwen2.5-VL-Instruct's chat template (chat_template.json), verbatim.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Seg-Zero's user prompt (fragments joined with no separator); embedded, not imported, so the
#: tokenizer bytes never change because another module changed.
SEGZERO_TEMPLATE = (
    "Please find '{question}' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format."
    "i.e., <think> thinking process here </think>"
    "<answer>{{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}}</answer>"
)

BPE_VOCAB_SIZE = 1600  # target incl. the 256-byte alphabet; the corpus decides the final size

_COLOURS = "red blue green yellow black white orange purple brown gray pink golden silver dark light".split()
_SIZES = "small large big tiny tall short long round square wide narrow little huge".split()
_OBJECTS = (
    "circle square star triangle rectangle cup mug dog cat knife fork spoon chair person man woman "
    "child boy girl car bus truck bike bottle apple banana orange table sofa couch bed lamp book "
    "phone laptop keyboard mouse screen window door plant flower tree bird horse cow sheep umbrella "
    "bag backpack hat shirt jacket shoe ball kite plate bowl glass vase clock sign bench boat train "
    "pizza cake sandwich carrot broccoli oven sink toilet fridge scissors remote toothbrush teddy bear"
).split()
_RELATIONS = (
    "left of|right of|above|below|next to|behind|in front of|inside|on top of|under|near|"
    "between the two|closest to|farthest from"
).split("|")
_USES = (
    "cut bread|drink water|sit on|read|write with|carry things|keep warm|tell the time|cook food|"
    "play with|ride|sleep on|eat|wash hands|hold flowers|call someone|type text|open the door"
).split("|")
_THOUGHTS = (
    "The user asks for the {o} that is {r} the {o2}.",
    "I need to find the {c} {o} in the image.",
    "Looking at the image, there are {n} objects: a {c} {o}, a {c2} {o2} and a {s} {o3}.",
    "The {s} {c} {o} is {r} the {c2} {o2}, so it matches the description.",
    "The object used to {u} is the {o}, which is located at the {p} of the image.",
    "Comparing the {o} and the {o2}, the {o} is more closely matched because it is {s}.",
    "It is not the {c2} {o2} because that one is {r} the {o3}.",
    "Therefore the target is the {c} {o} near the {p}.",
    "The bounding box covers the whole {o} and the two points lie inside it.",
)
_PLACES = "top left|top right|bottom left|bottom right|center|left side|right side|top|bottom|middle".split(
    "|"
)
#: Everyday words so the vocabulary reaches ~1.5k pieces and think-style text has real variety.
_WORDS = (
    "about after again against almost along already also although always among another answer any "
    "appear area around arrive ask away back background balance basket beach beautiful because become "
    "before begin behaviour believe belong beneath beside best better beyond blanket board body border "
    "bottom branch bread bright bring brush building busy button calm camera candle careful carpet "
    "carry ceiling center certain chain change cheap check choose clean clear climb close cloth cloud "
    "coast coat colour common compare complete contain corner correct count cover crowd curtain "
    "cushion dangerous decide deep describe detail different difficult dinner direction distance "
    "divide double drawer dress drink drive during early earth edge either empty enough entire "
    "evening every exactly example except expect explain face fence field figure final find finger "
    "first floor follow food foot forest forward frame free fresh friend front fruit full garden "
    "gather gentle glove grass ground group guess half hand handle happen heavy height hidden high "
    "hold hole holding horizon identify image important include indoor instead interest island "
    "itself kitchen ladder lake large later leaf least leave length level likely line liquid living "
    "located look lower machine match material maybe meadow measure metal mirror model moment "
    "morning mountain mostly move narrow nature nearby nearly neither never night noise notice "
    "number object obvious ocean often only open opposite other outdoor outside over paint pair "
    "paper part partly path pattern pencil perhaps picture piece pillow place plastic pocket point "
    "pole position possible pretty probably question quickly quite rather reach ready really reason "
    "region remain remove rest result river road rock roof room rope rough row rubber scene sea "
    "seat second section seem shade shadow shape sharp shelf shine shore should side similar simple "
    "since single size sky slightly smooth snow soft solid some something sometimes space speak "
    "special stand stone straight street strong structure surface surround target therefore thin "
    "thing third those through toward tower towel track travel tray under until upper usually "
    "valley visible wall water wheel whole wire within without wood wooden yard yellow zone"
).split()
_FILLERS = (
    "{w} {w2} {w3} {w4}.",
    "Maybe the {w} is {w2} and {w3}.",
    "I {w} the {w2} near the {w3}, {w4} {w5}.",
    "Is it {w} or {w2}? It seems {w3}.",
)
_QUESTIONS = (
    "the red circle",
    "the thing I could cut bread with",
    "the object used for cutting",
    "the person on the left",
    "what can hold water?",
    "the animal that is sleeping.",
)


def _rng_choice(rng: random.Random, seq: list[str] | tuple[str, ...]) -> str:
    # random() is the one generator output Python guarantees stable across versions; choice() is not.
    return seq[int(rng.random() * len(seq))]


def _answer_json(rng: random.Random, quote: str) -> str:
    x1, y1 = int(rng.random() * 700), int(rng.random() * 700)
    x2, y2 = x1 + 1 + int(rng.random() * (839 - x1)), y1 + 1 + int(rng.random() * (839 - y1))
    p = [(x1 + int(rng.random() * (x2 - x1)), y1 + int(rng.random() * (y2 - y1))) for _ in range(2)]
    q = quote
    sep = ", " if rng.random() < 0.5 else ","
    return (
        f"{{{q}bbox{q}: [{x1}{sep}{y1}{sep}{x2}{sep}{y2}], {q}points_1{q}: [{p[0][0]}{sep}{p[0][1]}], "
        f"{q}points_2{q}: [{p[1][0]}{sep}{p[1][1]}]}}"
    )


def corpus() -> list[str]:
    """The embedded training corpus: prompts, chat scaffolding, JSON answers, think-style text."""
    rng = random.Random(1234)
    lines: list[str] = [SEGZERO_TEMPLATE.format(question=q.lower().strip(".")) for q in _QUESTIONS]
    lines += ["system\n" + DEFAULT_SYSTEM, "user\n", "assistant\n"] * 4
    # Relational sentences over a strided grid of the product, so every word appears in many contexts.
    grid = itertools.product(_COLOURS, _SIZES, _OBJECTS, _RELATIONS)
    for i, (c, s, o, r) in enumerate(grid):
        if i % 7 == 0:
            lines.append(f"the {c} {o} is {r} the {_rng_choice(rng, _SIZES)} {_rng_choice(rng, _OBJECTS)}.")
        if i % 11 == 0:
            lines.append(f"The {s} {c} {o}")
    for _ in range(3000):
        fields = {
            "o": _rng_choice(rng, _OBJECTS),
            "o2": _rng_choice(rng, _OBJECTS),
            "o3": _rng_choice(rng, _OBJECTS),
            "c": _rng_choice(rng, _COLOURS),
            "c2": _rng_choice(rng, _COLOURS),
            "s": _rng_choice(rng, _SIZES),
            "r": _rng_choice(rng, _RELATIONS),
            "u": _rng_choice(rng, _USES),
            "p": _rng_choice(rng, _PLACES),
            "n": str(int(rng.random() * 9) + 2),
        }
        think = " ".join(_rng_choice(rng, _THOUGHTS).format(**fields) for _ in range(3))
        answer = _answer_json(rng, '"' if rng.random() < 0.7 else "'")
        lines.append(f"<think>{think}</think>\n<answer>{answer}</answer>")
    for _ in range(4000):
        words = {k: _rng_choice(rng, _WORDS) for k in ("w", "w2", "w3", "w4", "w5")}
        lines.append(_rng_choice(rng, _FILLERS).format(**words).capitalize())
    return lines


def build_tokenizer() -> Tokenizer:
    """Return the project's raw `tokenizers.Tokenizer` (byte-level BPE + Qwen2.5-VL specials).

    A fresh object each call (callers may mutate it). Deterministic: the corpus is fixed and
    BPE training breaks ties by a total order, so the serialised JSON is byte-identical on
    every build for a given `tokenizers` version.
    """
    from tokenizers import Tokenizer

    return Tokenizer.from_str(_trained_json())


@functools.lru_cache(maxsize=1)
def _trained_json() -> str:
    # Training takes ~0.5 s; builders ask for the tokenizer several times per build.
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    # Specials go after the BPE vocab, as in Qwen; normalized=False so NFC never touches them.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok.to_str(pretty=True)


def special_token_ids(tok: Tokenizer) -> dict[str, int]:
    """Map each Qwen2.5-VL special token to its id in `tok`."""
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"tokenizer lacks special tokens {missing}; build it with build_tokenizer()")
    return ids  # type: ignore[return-value]


def tokenizer_config(tok: Tokenizer) -> dict[str, Any]:
    """tokenizer_config.json contents, modelled on Qwen2.5-VL-Instruct's."""
    ids = special_token_ids(tok)
    decoder = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in ids.items()
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": PAD_TOKEN,
        "split_special_tokens": False,
        # Qwen2Tokenizer rebuilds the same pipeline from vocab/merges, exactly as for the real model.
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_tokenizer(out_dir: Path) -> Path:
    """Write tokenizer.json, tokenizer_config.json (with chat_template), special_tokens_map.json
    and chat_template.jinja into `out_dir`; returns `out_dir`. Byte-identical on every call."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    (out_dir / "tokenizer.json").write_text(_trained_json(), encoding="utf-8")
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config(tok))
    specials = {
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
    }
    _write_json(out_dir / "special_tokens_map.json", specials)
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return out_dir


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
