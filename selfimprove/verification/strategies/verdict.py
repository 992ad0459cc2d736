"""Single-verdict judges: one prompt, one verdict per vote (optionally asked twice, "think twice").

`factuality`, `correctness` and `relevance` read the prompt file of their name; `simple` is the
SVD paper's single-judge baseline and reads `correctness`.
"""
from __future__ import annotations

from selfimprove import prompts
from selfimprove.verification.strategy import Strategy, register_strategy
from selfimprove.verification.votes import Call, decide, user_turn, verdicts


class Verdict(Strategy):
    def judge(self, backend, items, stage, seed):
        prompt = prompts.load(self.prompts[0])
        n = 1 if stage.scoring == "probability" else stage.votes
        msgs = [user_turn(prompt.render(question=it.question, answer=it.answer)) for it in items]
        calls = [[Call(v, "verdict", prompt.hash, raw, d, p, n_tokens=t) for v, (raw, d, p, t) in enumerate(votes)]
                 for votes in verdicts(backend, msgs, stage, n, seed)]
        if stage.reconsider:
            calls = _reconsider(backend, msgs, calls, stage, seed)
        return [decide(c, stage) for c in calls]


def _reconsider(backend, msgs, calls: list[list[Call]], stage, seed: int) -> list[list[Call]]:
    """Each vote's verdict turn is followed by a 'check again' turn; the first verdict is kept as a
    record (decision '' so it does not vote) and the second decides."""
    again = prompts.load("reconsider")
    follow = [m + [{"role": "assistant", "content": c.raw_output if stage.scoring == "sample" else f"[[{c.decision}]]"},
                   {"role": "user", "content": again.text}]
              for m, cs in zip(msgs, calls) for c in cs]
    outs = iter(verdicts(backend, follow, stage, 1, seed + 2))
    result = []
    for cs in calls:
        merged = []
        for c in cs:
            [(raw, d, p, t)] = next(outs)
            merged += [Call(c.vote_index, c.call, c.prompt_hash, c.raw_output, "", c.p_yes, n_tokens=c.n_tokens),
                       Call(c.vote_index, "reconsider", again.hash, raw, d, p, n_tokens=t)]
        result.append(merged)
    return result


@register_strategy
class Factuality(Verdict):
    name, prompts = "factuality", ("factuality",)


@register_strategy
class Correctness(Verdict):
    name, prompts = "correctness", ("correctness",)


@register_strategy
class Relevance(Verdict):
    name, prompts = "relevance", ("relevance",)


@register_strategy
class Simple(Verdict):
    name, prompts = "simple", ("correctness",)
