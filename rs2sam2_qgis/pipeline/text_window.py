"""Queries longer than the model's text window are refused before the run, naming the limit.

Why: every tokenizer cuts a text at its window (the demo model reads 32 tokens), so the end of a long query would be
dropped without a word and the user would get an answer to a question they did not ask.
"""
from __future__ import annotations

from collections.abc import Sequence

from .errors import InputError


def model_tokenizer(model) -> object | None:
    """The tokenizer of a model_core model (RS2-SAM2: its union encoder's; RSRefSeg: its own), if it has one that
    can count tokens; None for models without one (e.g. test models, py: factories)."""
    for owner in (getattr(model, "union_encoder", None), model):
        if owner is None:
            continue
        try:
            tok = getattr(owner, "tokenizer", None)
        except (FileNotFoundError, ValueError, ImportError):
            return None  # no tokenizer file: the model itself reports that when it runs
        if tok is not None and hasattr(tok, "token_count") and hasattr(tok, "window"):
            return tok
    return None


def check_text_window(model, queries: Sequence[str]) -> None:
    """InputError (one line) for the first query that does not fit the model's text window."""
    tok = model_tokenizer(model)
    if tok is None or not tok.window:
        return
    for q in queries:
        n = tok.token_count(q)
        if n > tok.window:
            shown = q if len(q) <= 60 else q[:57] + "..."
            raise InputError(f"the query '{shown}' is {n} tokens long but this model reads at most {tok.window} "
                             f"(its text window, start/end tokens included), so its end would be ignored; shorten "
                             f"it to a few words")
