"""Seg-Zero's prompts (both answer formats), their chat messages, and the 840×840 resize.

Two answer formats exist, each with its own prompt:

- `single` (the original Seg-Zero release, the default): one object as
  `{"bbox": [...], "points_1": [...], "points_2": [...]}`;
- `multi` (Seg-Zero's current release, the VisionReasoner format): a JSON list of
  `{"bbox_2d": [...], "point_2d": [...]}`, one entry per object, possibly none.

The template fragments are joined with no separator, exactly as Seg-Zero's training and
evaluation code does; changing a character changes what a trained checkpoint sees.

System turn: Seg-Zero's training config sets "You are a helpful assistant." for both
formats; its inference and evaluation scripts send no system turn, so Qwen2.5-VL's chat
template inserts its default, which is the same sentence. Either way the rendered prompt
holds the same bytes, and `chat_messages` writes it explicitly.
"""

from __future__ import annotations

from typing import Any, Literal

from PIL import Image

#: Side of the square image the reasoner sees; answer coordinates live in this space.
REASONER_SIZE = 840

#: System prompt used in training (Qwen's default, which the chat template also inserts).
SYSTEM_PROMPT = "You are a helpful assistant."

_TEMPLATE_FRAGMENTS = (
    "Please find '{question}' with bbox and points.",
    "Compare the difference between objects and find the most closely matched one.",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.",
    "i.e., <think> thinking process here </think>",
    "<answer>{answer}</answer>",
)

#: The full template with `{question}` and `{answer}` placeholders.
QUESTION_TEMPLATE = "".join(_TEMPLATE_FRAGMENTS)

#: The example answer Seg-Zero puts in the prompt (single quotes: it is not valid JSON).
EXAMPLE_ANSWER = "{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}"


_MULTI_TEMPLATE_FRAGMENTS = (
    'Please find "{question}" with bboxs and points.',
    "Compare the difference between object(s) and find the most closely matched object(s).",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the bbox(es) and point(s) inside the interested object(s) in JSON format.",
    "i.e., <think> thinking process here </think>",
    "<answer>{answer}</answer>",
)

#: The multi-object template (Seg-Zero's `rl_dataset.py`, `infer_multi_object.py`,
#: `evaluation_visionreasoner.py`), with `{question}` and `{answer}` placeholders.
MULTI_QUESTION_TEMPLATE = "".join(_MULTI_TEMPLATE_FRAGMENTS)

#: The example answer in the multi-object prompt (valid JSON, two objects).
MULTI_EXAMPLE_ANSWER = (
    '[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
    '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]'
)

AnswerFormat = Literal["single", "multi"]
#: The answer formats, the default first.
ANSWER_FORMATS: tuple[str, ...] = ("single", "multi")

#: Characters Seg-Zero's evaluation scripts strip from a dataset query before the prompt's own
#: normalisation: `evaluation.py` strips dots, `evaluation_visionreasoner.py` also `"?!`.
EVAL_STRIP = {"single": ".", "multi": '."?!'}


def check_answer_format(answer_format: str) -> str:
    """Return `answer_format` when known; raise ValueError naming the known ones otherwise."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}; known: {', '.join(ANSWER_FORMATS)}")
    return answer_format


def normalize_question(text: str) -> str:
    """Seg-Zero's query normalisation: lower-case, strip leading/trailing dots."""
    return text.lower().strip(".")


def evaluation_query(text: str, answer_format: str = "single") -> str:
    """A dataset query as Seg-Zero's evaluation script of that format hands it to the prompt.

    The prompt's own `normalize_question` then changes nothing more, so passing the result
    to any reasoner reproduces the script's prompt exactly.
    """
    check_answer_format(answer_format)
    return text if answer_format == "single" else text.lower().strip(EVAL_STRIP[answer_format])


def user_prompt(query: str, answer_format: str = "single") -> str:
    """The user text for one query, exactly as Seg-Zero builds it for that answer format."""
    if check_answer_format(answer_format) == "multi":
        return MULTI_QUESTION_TEMPLATE.format(question=normalize_question(query), answer=MULTI_EXAMPLE_ANSWER)
    return QUESTION_TEMPLATE.format(question=normalize_question(query), answer=EXAMPLE_ANSWER)


def training_user_text(query: str, answer_format: str = "single") -> str:
    """The user text of a training prompt, which the trainer places right after the image.

    Seg-Zero's trainer (`verl/utils/rl_dataset.py`) writes the user turn as the string
    `"<image>" + text` for the single format but `"<image>\n" + text` for the multi one, so
    a multi checkpoint was trained with a newline between the image and the prompt (its
    inference scripts send none). This reproduces the training side exactly.
    """
    text = user_prompt(query, answer_format)
    return "\n" + text if answer_format == "multi" else text


def chat_messages(
    query: str, image: Any = None, *, system: str | None = SYSTEM_PROMPT, answer_format: str = "single"
) -> list[dict]:
    """Chat messages in the Qwen2.5-VL processor format: an image item, then the prompt text.

    `image` is whatever the processor's chat path accepts (a PIL image, or None to leave a
    placeholder item); `system=None` leaves the system turn to the chat template's default.
    """
    content: list[dict] = [{"type": "image"} if image is None else {"type": "image", "image": image}]
    content.append({"type": "text", "text": user_prompt(query, answer_format)})
    messages: list[dict] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def resize_for_reasoner(image: Image.Image, size: int = REASONER_SIZE) -> Image.Image:
    """Resize to size×size, bilinear, aspect ratio not kept (Seg-Zero's reasoner input)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image.resize((size, size), Image.BILINEAR)
