"""SD-Zero Phase 1: self-revision tuples, and the SRT training rows made from the kept ones.

For each Phase-1 seed, its first `init_per_seed` sampled candidates are the initial responses
y_init. Each is graded by the reward; the control phrase P_r for that grade is appended inside
the assistant turn, and the model continues from there with y_revised, which is graded too. A
tuple is kept when its revision is correct. Every tuple is a row, kept or not, with its reason.

SRT trains on each kept tuple twice (two rows, raw rendered text, loss on the completion only):
- revision:   chat(x) + y_init + P_r  →  y_revised
- generation: chat(x)                 →  y_init + P_r + y_revised
"""
from __future__ import annotations

from selfimprove.scoring.answers import final_answer
from selfimprove.inference.base import Backend, SamplingParams
from selfimprove.verification.rewards import Reward
from selfimprove.generation.sampling import user_message
from selfimprove.methods.sdzero.config import SDZeroConfig, control_hash, control_phrase


def initial_responses(seeds: list[dict], candidates: list[dict], per_seed: int) -> list[tuple[dict, dict]]:
    """(seed, candidate) pairs: each seed's first `per_seed` candidates that are not error rows."""
    by_seed: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: c["sample_index"]):
        if not c.get("error"):
            by_seed.setdefault(c["seed_id"], []).append(c)
    return [(s, c) for s in seeds for c in by_seed.get(s["seed_id"], [])[:per_seed]]


def revise(backend: Backend, seeds: list[dict], candidates: list[dict], reward: Reward, config: SDZeroConfig,
           prompt_name: str, answer_format: str, progress=None) -> list[dict]:
    """One row per (seed, y_init): the grade, the control phrase, the revision, its grade, kept or not."""
    pairs = initial_responses(seeds, candidates, config.init_per_seed)
    init_rewards = reward.grade([s for s, _ in pairs], [c["text"] for _, c in pairs])
    todo = [i for i, r in enumerate(init_rewards) if r is not None]
    params = SamplingParams(temperature=config.revise_temperature, top_p=config.revise_top_p, top_k=0,
                            max_new_tokens=config.revise_max_new_tokens, n=1, seed=config.seed)
    gens = backend.generate([user_message(pairs[i][0]["question"], prompt_name) for i in todo], params,
                            assistant_prefix=[pairs[i][1]["text"] + control_phrase(init_rewards[i]) for i in todo],
                            progress=progress)
    revised = {i: g[0] for i, g in zip(todo, gens)}
    revised_rewards = dict(zip(todo, reward.grade([pairs[i][0] for i in todo], [revised[i].text for i in todo])))
    rows = []
    for i, (seed, cand) in enumerate(pairs):
        r0, gen, r1 = init_rewards[i], revised.get(i), revised_rewards.get(i)
        if r0 is None:
            reason = "dropped: y_init has no reward (no agreement label for this seed)"
        elif r1 is None:
            reason = "dropped: the revision could not be graded"
        else:
            reason = "kept: revision correct" if r1 else "dropped: revision wrong"
        rows.append({
            "revision_id": f"{cand['candidate_id']}/rev", "seed_id": seed["seed_id"], "candidate_id": cand["candidate_id"],
            "init_text": cand["text"], "init_answer": cand.get("final_answer"), "init_reward": r0,
            "control": None if r0 is None else ("correct" if r0 else "wrong"),
            "control_hash": None if r0 is None else control_hash(r0),
            "revised_text": gen.text if gen else None,
            "revised_answer": final_answer(gen.text, seed["domain"], answer_format) if gen else None,
            "revised_n_tokens": gen.n_tokens if gen else None, "revised_reward": r1,
            "reward_source": reward.source, "kept": bool(r1), "reason": reason,
        })
    return rows


def training_rows(revisions: list[dict], seeds: list[dict], render, prompt_name: str) -> list[dict]:
    """Two SRT rows per kept tuple. `render(messages)` is the chat template with the generation prompt."""
    questions = {s["seed_id"]: s["question"] for s in seeds}
    out = []
    for r in revisions:
        if not r["kept"]:
            continue
        chat = render(user_message(questions[r["seed_id"]], prompt_name))
        phrase = control_phrase(r["init_reward"])
        base = {"candidate_id": r["revision_id"], "seed_id": r["seed_id"], "format": "text"}
        out.append({**base, "loss": "revision", "prompt": chat + r["init_text"] + phrase, "completion": r["revised_text"]})
        out.append({**base, "loss": "generation", "prompt": chat,
                    "completion": r["init_text"] + phrase + r["revised_text"]})
    return out
