"""Torch-free prompt rendering and tokenisation for the reasoner (the `tokenizers` library only).

The exporter renders the processor's chat template once, for Seg-Zero's messages (system
turn, then user = [image, text]), around a sentinel user text and records what comes before
and after it (`prompt.prefix`, `prompt.suffix`) in the manifest, together with Seg-Zero's user
template. Rendering a query is then string concatenation: no Jinja at run time, and the text
is byte-identical to `processor.apply_chat_template(chat_messages(query), add_generation_prompt=True)`
(tests check this). The single `<|image_pad|>` in the prefix is expanded to one id per image
feature row after tokenisation, as the HF processor does (special tokens never merge, so
expanding ids equals expanding the text).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.graphs.reasoner_prompt import QUESTION_FIELD, apply_question_rule


class PromptTokenizer:
    """Seg-Zero prompt rendering + `tokenizers.Tokenizer` encode/decode, from manifest metadata.

    meta: the reasoner component's `prompt` and `special_tokens` entries (see
    `segzero_edge.export.reasoner.reasoner_metadata`).
    """

    def __init__(self, tokenizer: Any, meta: dict[str, Any]) -> None:
        try:
            prompt, special = meta["prompt"], meta["special_tokens"]
            self.prefix: str = prompt["prefix"]
            self.suffix: str = prompt["suffix"]
            self.user_template: str = prompt["user_template"]
            self.question_rule: str = prompt["question_normalization"]
            self.image_pad_id = int(special["image_pad"])
            self.stop_ids = frozenset(int(i) for i in special["eos"])
        except KeyError as exc:
            raise ValueError(
                f"reasoner metadata lacks {exc}; re-export the engine with this package"
            ) from None
        if QUESTION_FIELD not in self.user_template:
            raise ValueError(
                f"prompt.user_template has no {QUESTION_FIELD} field: {self.user_template[:80]!r}"
            )
        apply_question_rule("x", self.question_rule)  # an unknown rule fails here, not per query
        self.tokenizer = tokenizer
        for name, token_id in special.items():
            ids = token_id if isinstance(token_id, list) else [token_id]
            for i in ids:
                if name != "eos" and tokenizer.id_to_token(int(i)) is None:
                    raise ValueError(
                        f"special token {name} id {i} is not in tokenizer.json: mismatched engine files"
                    )
        # User text goes through a copy that reads special-token strings ("<|im_end|>") as
        # plain text, so a query can never close its turn or fake an image token. The copy is
        # made once and never changed: encoding stays thread-safe.
        from tokenizers import Tokenizer

        self.plain = Tokenizer.from_str(tokenizer.to_str())
        self.plain.encode_special_tokens = True
        # The template around the user text is fixed: encode it once, with its control tokens.
        self._prefix = tokenizer.encode(self.prefix, add_special_tokens=False)
        self._suffix = tokenizer.encode(self.suffix, add_special_tokens=False)
        pads = self._prefix.ids.count(self.image_pad_id) + self._suffix.ids.count(self.image_pad_id)
        if pads != 1 or self.image_pad_id not in self._prefix.ids:
            raise ValueError(
                f"the manifest's prompt prefix/suffix hold {pads} <|image_pad|> tokens (id {self.image_pad_id}), "
                "expected exactly 1, in the prefix: the prompt or special_tokens.image_pad is wrong"
            )

    @classmethod
    def from_file(cls, path: str | Path, meta: dict[str, Any]) -> PromptTokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the tokenizers library raises plain Exception for a bad file
            raise ValueError(f"{path} is not a tokenizers JSON file: {exc}") from None
        return cls(tokenizer, meta)

    def user_text(self, query: str) -> str:
        """Seg-Zero's user prompt for a query (str.replace: the template holds literal braces)."""
        return self.user_template.replace(QUESTION_FIELD, apply_question_rule(query, self.question_rule))

    def render(self, query: str) -> str:
        """The full chat-formatted prompt with a single <|image_pad|> placeholder."""
        return self.prefix + self.user_text(query) + self.suffix

    def count_query_tokens(self, query: str) -> int:
        """Tokens of the normalised question alone, encoded as plain text (what the query
        limit counts; the template around it is ~100 tokens more, the image its own)."""
        return len(self.plain.encode(apply_question_rule(query, self.question_rule), add_special_tokens=False).ids)

    def encode_prompt(self, query: str, n_image_tokens: int) -> np.ndarray:
        """Prompt ids [S] int64 with the image placeholder expanded to `n_image_tokens` ids.

        prefix and suffix keep their control tokens; the user text (Seg-Zero's template with
        the question) is plain text whatever it holds. The prefix ends and the suffix starts
        with a special token, so encoding the three apart gives the ids that encoding the
        whole rendered string gives for any query without special-token strings.
        """
        from tokenizers import Encoding

        if n_image_tokens < 1:
            raise ValueError(f"n_image_tokens must be >= 1, got {n_image_tokens}")
        user = self.plain.encode(self.user_text(query), add_special_tokens=False)
        merged = Encoding.merge([self._prefix, user, self._suffix], growing_offsets=True)
        ids = np.asarray(self.tokenizer.post_process(merged).ids, np.int64)
        i = int(np.flatnonzero(ids == self.image_pad_id)[0])  # the prefix's one placeholder
        return np.concatenate([ids[:i], np.full(n_image_tokens, self.image_pad_id, np.int64), ids[i + 1 :]])

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        """Text of generated ids (HF batch_decode with clean_up_tokenization_spaces=False)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
