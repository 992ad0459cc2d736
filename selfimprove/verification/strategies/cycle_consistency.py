"""Cycle-consistency: infer the question from the answer alone, then compare it with the original.

Each vote re-runs `infer` (call A) and asks `compare` (call B) once: one vote = two calls.
"""
from __future__ import annotations

from selfimprove import prompts
from selfimprove.inference.base import SamplingParams
from selfimprove.verification.strategy import Strategy, register_strategy
from selfimprove.verification.votes import Call, decide, user_turn, verdicts


@register_strategy
class CycleConsistency(Strategy):
    name = "cycle_consistency"
    prompts = ("cycle_infer", "cycle_compare")

    def judge(self, backend, items, stage, seed):
        from selfimprove.verification.judges import neutralize

        infer, compare = prompts.load("cycle_infer"), prompts.load("cycle_compare")
        params = SamplingParams(temperature=stage.temperature, top_p=1.0, max_new_tokens=stage.max_new_tokens,
                                n=stage.votes, seed=seed, thinking="off")
        inferred = backend.generate([user_turn(infer.render(answer=it.answer)) for it in items], params)
        flat = [(i, v, neutralize(g.text.strip()), g.n_tokens) for i, gens in enumerate(inferred) for v, g in enumerate(gens)]
        msgs = [user_turn(compare.render(question=items[i].question, inferred=q, answer=items[i].answer))
                for i, _, q, _ in flat]
        calls: list[list[Call]] = [[] for _ in items]
        for (i, v, q, n_tok), [(raw, d, p, n_out)] in zip(flat, verdicts(backend, msgs, stage, 1, seed + 1)):
            calls[i] += [Call(v, "infer", infer.hash, q, "", n_tokens=n_tok),
                         Call(v, "compare", compare.hash, raw, d, p, n_tokens=n_out)]
        return [decide(c, stage) for c in calls]
