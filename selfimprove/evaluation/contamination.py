"""Contamination guard: training text must not contain held-out items.

Every training example's question and completion is compared with every registered
held-out item by normalised exact match and by word n-gram overlap: an item is flagged
when its normalised question equals a training text, or when at least `threshold` of
its n-grams occur in the training texts. N-grams found in more than `template_share` of
a held-out set's items are that set's template ("Calculate", "Does it logically follow
that") and do not count. Items shorter than `ngram` words can only match exactly.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from selfimprove.validation import AtLeast1, Share


class ContaminationError(ValueError):
    pass


@dataclass
class ContaminationConfig:
    """The guard run before any training stage."""

    enabled: bool = True  # run the guard before training
    ngram: AtLeast1 = 8  # words per n-gram
    threshold: Share = 0.5  # share of a held-out item's n-grams in training text that flags it
    template_share: Share = 0.05  # n-grams in more than this share of a set's items are template (sets of >= 20)
    builtin: list[str] = field(default_factory=lambda: ["arithmetic", "syllogism", "humaneval"])  # registered sets checked besides the run's own
    allow: bool = False  # override: record the overlaps and train anyway


_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _grams(toks: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def find_overlaps(train: list[tuple[str, str]], heldout: list[dict], config: ContaminationConfig) -> list[dict]:
    """`train` = [(example id, text)]; `heldout` = items with dataset, item_id, question. Flagged items only."""
    n = config.ngram
    exact: dict[str, str] = {}
    owner: dict[tuple[str, ...], str] = {}
    for tid, text in train:
        toks = tokens(text)
        exact.setdefault(" ".join(toks), tid)
        for g in _grams(toks, n):
            owner.setdefault(g, tid)
    by_set: dict[str, list[dict]] = {}
    for it in heldout:
        by_set.setdefault(it["dataset"], []).append(it)
    flagged = []
    for dataset, items in by_set.items():
        grams = {it["item_id"]: _grams(tokens(it["question"]), n) for it in items}
        df = Counter(g for gs in grams.values() for g in gs)
        template = {g for g, c in df.items() if c > config.template_share * len(items)} if len(items) >= 20 else set()
        for it in items:
            norm = " ".join(tokens(it["question"]))
            if norm in exact:
                flagged.append({"dataset": dataset, "item_id": it["item_id"], "train_id": exact[norm], "kind": "exact",
                                "overlap": 1.0, "question": it["question"]})
                continue
            own = grams[it["item_id"]] - template
            if not own:
                continue
            hits = [owner[g] for g in own if g in owner]
            share = len(hits) / len(own)
            if share >= config.threshold:
                flagged.append({"dataset": dataset, "item_id": it["item_id"], "train_id": Counter(hits).most_common(1)[0][0],
                                "kind": f"{n}-gram", "overlap": round(share, 4), "question": it["question"]})
    return flagged


def describe(flagged: list[dict], limit: int = 10) -> str:
    lines = [f"  {f['dataset']}/{f['item_id']} ({f['kind']}, overlap {f['overlap']:.2f}) in training example "
             f"{f['train_id']}: {f['question'][:80]!r}" for f in flagged[:limit]]
    more = f"\n  ... and {len(flagged) - limit} more" if len(flagged) > limit else ""
    return "\n".join(lines) + more
