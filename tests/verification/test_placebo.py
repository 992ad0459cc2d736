"""The placebo filter (`random_keep`): exactly `keep` candidates, at most one per seed, only format-valid ones,
the same draw for the same seed."""
import pytest

from selfimprove.verification.filters import FilterConfig, random_keep


def _candidates(seeds=10, per_seed=4):
    out = []
    for s in range(seeds):
        for k in range(per_seed):
            bad = (s + k) % 3 == 0  # a third have no final answer: the format pre-filter rejects them
            out.append({"candidate_id": f"s{s}#{k}", "seed_id": f"s{s}", "sample_index": k,
                        "text": "so 5" if not bad else "hmm", "final_answer": None if bad else "5",
                        "error": "backend:Timeout" if (s, k) == (1, 1) else None})
    return out


def _kept(verdicts):
    return [v["candidate_id"] for v in verdicts if v["accepted"]]


def test_random_keep_keeps_exactly_keep_one_per_seed_of_the_valid_ones_reproducibly():
    cands = _candidates()
    verdicts = random_keep(cands, FilterConfig(rule="random_keep", keep=6))
    kept = _kept(verdicts)
    assert len(kept) == 6 and len({k.split("#")[0] for k in kept}) == 6  # one per seed
    by_id = {c["candidate_id"]: c for c in cands}
    assert all(by_id[k]["final_answer"] and not by_id[k]["error"] for k in kept)
    assert {v["rejected_at_stage"] for v in verdicts if not v["accepted"]} == {"format", "error", "placebo"}
    assert len(verdicts) == len(cands)
    assert _kept(random_keep(cands, FilterConfig(rule="random_keep", keep=6))) == kept  # the same draw
    others = {tuple(_kept(random_keep(cands, FilterConfig(rule="random_keep", keep=6, seed=s)))) for s in range(1, 6)}
    assert others - {tuple(kept)}  # another seed, another draw
    # more than there are seeds with a valid candidate: every such seed, once
    assert len(_kept(random_keep(cands, FilterConfig(rule="random_keep", keep=99)))) == 10


def test_random_keep_draws_uniformly_over_seeds():
    cands = _candidates(seeds=20)
    counts = {f"s{s}": 0 for s in range(20)}
    for seed in range(400):
        for k in _kept(random_keep(cands, FilterConfig(rule="random_keep", keep=5, seed=seed))):
            counts[k.split("#")[0]] += 1
    assert 60 <= min(counts.values()) and max(counts.values()) <= 140  # each seed ~100 of 400 x 5 / 20


def test_random_keep_needs_a_size():
    with pytest.raises(ValueError, match="needs filter.keep"):
        random_keep(_candidates(), FilterConfig(rule="random_keep"))
