"""Seg-Zero's single-object prompt, its chat messages, and the 840×840 reasoner resize.

The template fragments are joined with no separator, exactly as Seg-Zero's training and
evaluation code does; changing a character changes what a trained checkpoint sees.
"""

from __future__ import annotations

from typing import Any

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


def normalize_question(text: str) -> str:
    """Seg-Zero's query normalisation: lower-case, strip leading/trailing dots."""
    return text.lower().strip(".")


def user_prompt(query: str) -> str:
    """The user text for one query, exactly as Seg-Zero builds it."""
    return QUESTION_TEMPLATE.format(question=normalize_question(query), answer=EXAMPLE_ANSWER)


def chat_messages(query: str, image: Any = None, *, system: str | None = SYSTEM_PROMPT) -> list[dict]:
    """Chat messages in the Qwen2.5-VL processor format: an image item, then the prompt text.

    `image` is whatever the processor's chat path accepts (a PIL image, or None to leave a
    placeholder item); `system=None` leaves the system turn to the chat template's default.
    """
    content: list[dict] = [{"type": "image"} if image is None else {"type": "image", "image": image}]
    content.append({"type": "text", "text": user_prompt(query)})
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
