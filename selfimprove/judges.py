"""Judge strategies and how their votes combine.

A stage = one strategy × `votes` independent samples × a voting rule. Strategies:
- `agreement`: self-consistency share of the candidate's answer (no model call).
- `cycle_consistency`: call `infer` reconstructs the question from the answer alone,
  call `compare` checks it against the original; each vote re-runs `infer`.
- `factuality`, `correctness`, `relevance`, `simple`: one verdict call per vote.
With `reconsider`, every verdict is followed by a second turn asking the judge to check
again ("think twice"); the second verdict is the vote.
Scoring a verdict:
- `sample`: the judge writes freely; the verdict is parsed from its text.
- `probability`: P(Y) among {Y, N} after the prefix "[[" against `threshold`; nothing is
  unparseable, and a prompt without sampled parts is asked once, whatever `votes` says.
- `constrained`: the same single forward pass, then each vote draws Y or N from those two
  probabilities at the judge temperature: independent votes that share one prefill.
Judges see only the final-answer part of a candidate, neutralised (see `neutralize`).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from . import prompts
from .agreement import agreement_scores
from .answers import final_part, parse_verdict
from .backends import Backend, SamplingParams

STRATEGIES = ("agreement", "cycle_consistency", "factuality", "correctness", "relevance", "simple")
RULES = ("unanimous", "majority", "at_least_k")
SCORINGS = ("sample", "probability", "constrained")
VERDICT_PREFIX = "[["
_VERDICT_TOKEN = re.compile(r"\[+\s*(Y|N|YES|NO)\s*\]+", re.IGNORECASE)


@dataclass
class StageConfig:
    """One cascade stage."""

    strategy: str  # one of STRATEGIES
    votes: int = 5  # independent judgments (paper best: 5)
    rule: str = "unanimous"  # unanimous | majority | at_least_k
    k: int = 1  # for at_least_k
    scoring: str = "sample"  # sample | probability | constrained (see module docstring)
    threshold: float = 0.5  # probability scoring: min P(Y|Y or N); agreement: min answer share
    temperature: float = 0.7  # judge sampling temperature
    max_new_tokens: int = 96  # room for a short rationale before the verdict
    gate: bool = True  # False records the stage's votes for telemetry but never rejects
    reconsider: bool = False  # ask each verdict a second time in a follow-up turn; the second one counts
    name: str = ""  # stage name in the lake; defaults to the strategy

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown judge strategy {self.strategy!r}; known: {STRATEGIES}")
        if self.rule not in RULES:
            raise ValueError(f"unknown voting rule {self.rule!r}; known: {RULES}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if self.votes < 1:
            raise ValueError("votes must be >= 1")
        self.name = self.name or self.strategy


@dataclass
class Item:
    """A candidate as a judge sees it."""

    candidate_id: str
    question: str
    answer: str  # final-answer part only
    agreement: float = 0.0


@dataclass
class Call:
    vote_index: int
    call: str
    prompt_hash: str
    raw_output: str
    decision: str  # Y | N | unparseable, or '' for a call that gives no verdict (cycle infer)
    p_yes: float | None = None


@dataclass
class StageResult:
    passed: bool
    reason: str
    calls: list[Call] = field(default_factory=list)


def combine(decisions: list[str], stage: StageConfig) -> bool:
    yes = sum(d == "Y" for d in decisions)
    if stage.rule == "unanimous":
        return yes == len(decisions)
    if stage.rule == "majority":
        return yes * 2 > len(decisions)
    return yes >= stage.k


def _verdicts(backend: Backend, messages: list[list[dict]], stage: StageConfig, n: int, seed: int) -> list[list[tuple[str, str, float | None]]]:
    """Per prompt, n (raw_output, decision, p_yes) triples."""
    if stage.scoring in ("probability", "constrained"):
        out = []
        for i, probs in enumerate(backend.choice_probs(messages, VERDICT_PREFIX, ["Y", "N"])):
            total = probs["Y"] + probs["N"]
            p_yes = probs["Y"] / total if total > 0 else 0.0
            raw = f"P(Y)={probs['Y']:.4g} P(N)={probs['N']:.4g}"
            if stage.scoring == "probability":
                out.append([(raw, "Y" if p_yes >= stage.threshold else "N", p_yes)] * n)
            else:
                rng = random.Random(seed * 1_000_003 + i)
                p = _tempered(p_yes, stage.temperature)
                out.append([(raw, "Y" if rng.random() < p else "N", p_yes) for _ in range(n)])
        return out
    params = SamplingParams(temperature=stage.temperature, top_p=1.0, max_new_tokens=stage.max_new_tokens, n=n, seed=seed)
    return [[(g.text, parse_verdict(g.text), None) for g in gens] for gens in backend.generate(messages, params)]


def prompts_used(stage: StageConfig) -> tuple[str, ...]:
    """The prompt files a stage reads: part of its version."""
    names = {"agreement": (), "cycle_consistency": ("cycle_infer", "cycle_compare"), "simple": ("correctness",)}
    used = names.get(stage.strategy, (stage.strategy,))
    return used + (("reconsider",) if stage.reconsider and used else ())


def _tempered(p_yes: float, temperature: float) -> float:
    """P(Y) after sharpening (T<1) or flattening (T>1) the two-way verdict distribution."""
    if temperature <= 0:
        return 1.0 if p_yes >= 0.5 else 0.0
    a, b = p_yes ** (1 / temperature), (1 - p_yes) ** (1 / temperature)
    return a / (a + b) if a + b > 0 else 0.5


def _msg(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def run_stage(backend: Backend, items: list[Item], stage: StageConfig, seed: int = 0) -> list[StageResult]:
    """Judge every item with one stage, batching all model calls of the stage together."""
    if not items:
        return []
    if stage.strategy == "agreement":
        return [_decide([Call(0, "agreement", "", f"share={it.agreement:.3f}",
                              "Y" if it.agreement >= stage.threshold else "N", it.agreement)], stage)
                for it in items]
    if stage.strategy == "cycle_consistency":
        return _cycle(backend, items, stage, seed)
    prompt = prompts.load("correctness" if stage.strategy == "simple" else stage.strategy)
    n = 1 if stage.scoring == "probability" else stage.votes
    msgs = [_msg(prompt.render(question=it.question, answer=it.answer)) for it in items]
    outs = _verdicts(backend, msgs, stage, n, seed)
    calls = [[Call(v, "verdict", prompt.hash, raw, d, p) for v, (raw, d, p) in enumerate(triples)] for triples in outs]
    if stage.reconsider:
        calls = _reconsider(backend, msgs, calls, stage, seed)
    return [_decide(c, stage) for c in calls]


def _reconsider(backend: Backend, msgs: list[list[dict]], calls: list[list[Call]], stage: StageConfig,
                seed: int) -> list[list[Call]]:
    """Each vote's verdict turn is followed by a 'check again' turn; the first verdict is kept as a
    record (decision '' so it does not vote) and the second decides."""
    again = prompts.load("reconsider")
    follow = [m + [{"role": "assistant", "content": c.raw_output if stage.scoring == "sample" else f"[[{c.decision}]]"},
                   {"role": "user", "content": again.text}]
              for m, cs in zip(msgs, calls) for c in cs]
    outs = iter(_verdicts(backend, follow, stage, 1, seed + 2))
    result = []
    for cs in calls:
        merged = []
        for c in cs:
            [(raw, d, p)] = next(outs)
            merged += [Call(c.vote_index, c.call, c.prompt_hash, c.raw_output, "", c.p_yes),
                       Call(c.vote_index, "reconsider", again.hash, raw, d, p)]
        result.append(merged)
    return result


def _cycle(backend: Backend, items: list[Item], stage: StageConfig, seed: int) -> list[StageResult]:
    infer, compare = prompts.load("cycle_infer"), prompts.load("cycle_compare")
    params = SamplingParams(temperature=stage.temperature, top_p=1.0, max_new_tokens=stage.max_new_tokens, n=stage.votes, seed=seed)
    inferred = backend.generate([_msg(infer.render(answer=it.answer)) for it in items], params)
    flat = [(i, v, neutralize(g.text.strip())) for i, gens in enumerate(inferred) for v, g in enumerate(gens)]
    msgs = [_msg(compare.render(question=items[i].question, inferred=q, answer=items[i].answer)) for i, _, q in flat]
    verdicts = _verdicts(backend, msgs, stage, 1, seed + 1)
    calls: list[list[Call]] = [[] for _ in items]
    for (i, v, q), [(raw, d, p)] in zip(flat, verdicts):
        calls[i] += [Call(v, "infer", infer.hash, q, ""), Call(v, "compare", compare.hash, raw, d, p)]
    return [_decide(c, stage) for c in calls]


def _decide(calls: list[Call], stage: StageConfig) -> StageResult:
    decisions = [c.decision for c in calls if c.decision]
    passed = combine(decisions, stage)
    yes = decisions.count("Y")
    unparseable = decisions.count("unparseable")
    reason = f"{stage.name}: {yes}/{len(decisions)} Y ({stage.rule})"
    if unparseable:
        reason += f", {unparseable} unparseable"
    if stage.strategy == "agreement":
        reason = f"agreement: answer share {calls[0].p_yes:.2f} (threshold {stage.threshold})"
    return StageResult(passed=passed, reason=reason, calls=calls)


def neutralize(text: str) -> str:
    """Candidate text as judges see it: no verdict brackets, no delimiter markers.

    A candidate cannot close the quote it sits in, nor plant a `[[Y]]` that a judge
    echoing its input would hand to the verdict parser.
    """
    text = _VERDICT_TOKEN.sub("(verdict removed)", text)
    for token, safe in (("[[", "[ ["), ("]]", "] ]"), ("<<<", "< < <"), (">>>", "> > >")):
        while token in text:
            text = text.replace(token, safe)
    return text


def make_items(candidates: list[dict], seeds_by_id: dict[str, dict]) -> list[Item]:
    """Items for every candidate, with agreement computed over each seed's candidates."""
    by_seed: dict[str, list[dict]] = {}
    for c in candidates:
        by_seed.setdefault(c["seed_id"], []).append(c)
    share: dict[str, float] = {}
    for sid, group in by_seed.items():
        for c, s in zip(group, agreement_scores([c["final_answer"] for c in group], seeds_by_id[sid]["domain"])):
            share[c["candidate_id"]] = s
    return [Item(c["candidate_id"], neutralize(seeds_by_id[c["seed_id"]]["question"]), neutralize(final_part(c["text"])),
                 share[c["candidate_id"]]) for c in candidates]
