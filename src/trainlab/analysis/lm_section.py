"""The report's per-token section of a language-model run, from token_losses.json (the final test)."""

from __future__ import annotations

import json

from ._doc import Doc
from .rundata import RunData


def lm_analysis(doc: Doc, run: RunData, level: int, compact: bool = False) -> None:
    path = run.path / "token_losses.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    doc.heading("Where the language model is surprised (test split, best checkpoint)", level)
    doc.para(f"{data['tokens']:,} test tokens ({path.resolve()}). Words are bucketed by their frequency rank in "
             f"the training vocabulary (1 = most frequent).", note=True)
    doc.table(["frequency rank", "tokens", "% of the test", "perplexity"],
              [[b["ranks"], b["tokens"], f"{100 * b['share']:.1f}%", round(b["ppl"], 1)] for b in data["buckets"]])
    if compact:
        return
    doc.heading("Highest mean surprisal (words seen at least 3 times)", level + 1)
    words = data["surprising"][:20]
    doc.table(["word", "times in the test", "mean surprisal (bits)"],
              [[w["word"], w["count"], round(w["bits"], 2)] for w in words])
    doc.heading("A passage coloured by surprisal", level + 1)
    doc.para("The first test tokens of one stream, each shaded by -log2 p(token | the text before it); "
             "hover for the bits.", note=True)
    doc.tokens([(t, b) for t, b in data["passage"]])
