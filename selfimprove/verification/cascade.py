"""The verification cascade: format pre-filter, then stages in order with early exit.

Candidates are tried in sampling order. With `first_valid` selection, round r judges
candidate r of every seed that has no accepted candidate yet, so each stage's model
calls are batched across seeds while the per-seed early exit stays exact. With
`all_valid`, every candidate is judged in one round.

Advisory stages after the last gating one (`gate: false`; the quickstart's three judges) change no verdict, so
they do not run per round: once the rounds are decided, each judges every round's survivors in one call (fuller
batches, one engine set-up instead of one a round). Their sampled votes then draw from one seed for all rounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from selfimprove.scoring.answers import format_problem
from selfimprove.inference.base import Backend
from selfimprove.verification.judges import StageConfig, judge, make_items
from selfimprove.verification.votes import Item

SELECTIONS = ("first_valid", "all_valid")


@dataclass
class CascadeConfig:
    """Which stages judge candidates, and which accepted candidates become training data."""

    stages: list[StageConfig] = field(default_factory=lambda: [  # the judge stages in order (see `cascade.stages[]`)
        StageConfig("cycle_consistency"), StageConfig("factuality"), StageConfig("correctness")])
    selection: str = "first_valid"  # first_valid (paper) | all_valid
    seed: int = 0  # judge sampling seed

    def __post_init__(self) -> None:
        self.stages = [s if isinstance(s, StageConfig) else StageConfig(**s) for s in self.stages]
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}; set `name` on repeated strategies")


def run_cascade(backend: Backend, seeds: list[dict], candidates: list[dict], config: CascadeConfig,
                progress=None, thinking: bool = False) -> tuple[list[dict], list[dict]]:
    """Return (judgment rows, verdict rows); one verdict per candidate. `thinking`: the sampler thinks
    (`prompt_format.thinks`), so the format pre-filter requires a closed </think>."""
    seeds_by_id = {s["seed_id"]: s for s in seeds}
    items = {it.candidate_id: it for it in make_items(candidates, seeds_by_id)}
    by_seed: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: (c["seed_id"], c["sample_index"])):
        by_seed.setdefault(c["seed_id"], []).append(c)
    judgments: list[dict] = []
    verdicts: dict[str, dict] = {}
    rounds = max((len(v) for v in by_seed.values()), default=0)
    if config.selection == "all_valid":
        schedule = [[c for group in by_seed.values() for c in group]]
    else:
        schedule = [None] * rounds
    done_seeds: set[str] = set()
    last_gate = max((i for i, s in enumerate(config.stages) if s.gate), default=-1)
    per_round, advisory = config.stages[:last_gate + 1], config.stages[last_gate + 1:]
    judged: list[tuple[Item, int]] = []  # every round's survivors, for the advisory stages after the rounds
    for r, planned in enumerate(schedule):
        batch = planned if planned is not None else [g[r] for sid, g in by_seed.items() if sid not in done_seeds and r < len(g)]
        alive: list[Item] = []
        for c in batch:
            if c.get("error"):  # the backend failed to sample it: an error row, never judged
                verdicts[c["candidate_id"]] = _verdict(c, False, "error", c["error"])
                continue
            problem = format_problem(c["text"], c["final_answer"], thinking)
            if problem:
                verdicts[c["candidate_id"]] = _verdict(c, False, "format", problem)
            else:
                alive.append(items[c["candidate_id"]])
        for stage in per_round:
            results = judge(backend, alive, stage, seed=config.seed + 7919 * r)
            survivors = []
            for it, res in zip(alive, results):
                judgments += _rows(it, stage, res, r)
                if res.passed or not stage.gate:
                    survivors.append(it)
                else:
                    verdicts[it.candidate_id] = _verdict(it, False, stage.name, res.reason)
            alive = survivors
        by_id = {c["candidate_id"]: c for c in batch}
        judged += [(it, r) for it in alive]
        for it in alive:
            verdicts[it.candidate_id] = _verdict(it, True, None, "passed: " + ", ".join(s.name for s in config.stages if s.gate) or "no gating stage")
            done_seeds.add(by_id[it.candidate_id]["seed_id"])
        if progress:
            progress(len(batch))
    for stage in advisory:
        for (it, r), res in zip(judged, judge(backend, [it for it, _ in judged], stage, seed=config.seed)):
            judgments += _rows(it, stage, res, r)
    for c in candidates:  # first_valid never judges the candidates after an accepted one
        if c["candidate_id"] not in verdicts:
            verdicts[c["candidate_id"]] = _verdict(c, False, "not_judged", "an earlier candidate of this seed was accepted (first_valid)")
    return judgments, [verdicts[c["candidate_id"]] for c in candidates]


def _rows(it: Item, stage: StageConfig, result, r: int) -> list[dict]:
    """The judgments rows of one candidate's calls at one stage in round r."""
    return [{"candidate_id": it.candidate_id, "stage": stage.name, "vote_index": call.vote_index, "call": call.call,
             "prompt_hash": call.prompt_hash, "raw_output": call.raw_output, "decision": call.decision,
             "p_yes": call.p_yes, "round": r, "model_call": call.model_call, "n_tokens": call.n_tokens}
            for call in result.calls]


def _verdict(c, accepted: bool, stage: str | None, reason: str) -> dict:
    cid = c["candidate_id"] if isinstance(c, dict) else c.candidate_id
    return {"candidate_id": cid, "accepted": accepted, "rejected_at_stage": stage, "reason": reason}
