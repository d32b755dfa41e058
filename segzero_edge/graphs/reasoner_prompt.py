"""How an exported reasoner's chat prompt is recorded, shared by the exporter and the runtime.

The exporter renders the processor's chat template once around `USER_SENTINEL` and stores
the text before and after it (`prompt.prefix`, `prompt.suffix`), Seg-Zero's user template
with a `QUESTION_FIELD` placeholder, and the name of the question rule. The runtime rebuilds
every prompt from those strings (`segzero_edge.runtime.tokenizer.PromptTokenizer`), so it
needs no Jinja and no processor.
"""

from __future__ import annotations

from segzero_edge.prompts import (
    EXAMPLE_ANSWER,
    MULTI_EXAMPLE_ANSWER,
    MULTI_QUESTION_TEMPLATE,
    QUESTION_TEMPLATE,
    check_answer_format,
    normalize_question,
)

#: Placeholder the exporter puts where the user text goes.
USER_SENTINEL = "\u0000SEGZERO_USER_TEXT\u0000"
#: Placeholder for the normalised question inside the user template.
QUESTION_FIELD = "{question}"
#: The question rule Seg-Zero uses (`segzero_edge.prompts.normalize_question`).
SEGZERO_QUESTION_RULE = "lower_strip_dots"
QUESTION_RULES = (SEGZERO_QUESTION_RULE, "none")
#: The parser of each answer format, recorded as `prompt.parser` next to `prompt.answer_format`
#: so an engine directory says how its answers are read; the runtime checks the pair.
PARSERS = {"single": "segzero_edge.answer.parse_answer", "multi": "segzero_edge.answer.parse_multi_answer"}


def user_template(answer_format: str = "single") -> str:
    """Seg-Zero's user text for an answer format with `QUESTION_FIELD` where the question goes
    (the example answer filled in: it holds literal braces, so the runtime uses str.replace)."""
    if check_answer_format(answer_format) == "multi":
        template = MULTI_QUESTION_TEMPLATE.replace("{answer}", MULTI_EXAMPLE_ANSWER)
    else:
        template = QUESTION_TEMPLATE.replace("{answer}", EXAMPLE_ANSWER)
    if template.count(QUESTION_FIELD) != 1:
        raise ValueError(f"Seg-Zero's {answer_format} template must hold {QUESTION_FIELD} once: {template!r}")
    return template


def apply_question_rule(text: str, rule: str) -> str:
    """Apply a manifest's question rule: Seg-Zero's lower-case + strip dots, or none."""
    if rule == SEGZERO_QUESTION_RULE:
        return normalize_question(text)
    if rule == "none":
        return text
    raise ValueError(f"unknown question normalisation {rule!r} in the manifest (known: {', '.join(QUESTION_RULES)})")
