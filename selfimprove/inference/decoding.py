"""How the transformers engine picks each next token: the sampler, and the stop at a complete answer.

Both are logits processors whose output the engine's greedy step (argmax) reads, in `generate` (static batches) and
in continuous batching alike:

- `TopKFirst` (`transformers.sampler: topk_first`, the default) takes the top-k logits first, then applies the
  temperature and top-p within those k, draws one of them and returns scores that are 0 on the drawn token and
  -inf elsewhere. transformers' own chain (`sampler: reference`) divides, sorts and samples over the whole
  vocabulary (49k tokens for SmolLM2) at every step. The distribution is the same: top-k, then the smallest
  prefix of the k whose mass reaches top-p, renormalised. Two things differ, so the sampler is part of the engine's
  identity: the random draw runs over k entries instead of the vocabulary (another random stream: the same seed
  gives other samples than `reference`), and logits tied at the k-th place are cut at k where transformers keeps
  every tie (bf16 logits tie often). `reference` reproduces earlier lakes exactly.
- `StopAtAnswer` ends a sequence once its answer is complete (`scoring/answer_end.py`): from the next step its
  only allowed token is EOS.
"""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.continuous_batching.cb_logits_processors import (
    ContinuousBatchingLogitsProcessor, ContinuousBatchingLogitsProcessorList)

from selfimprove.scoring.answer_end import answer_end

SAMPLERS = ("topk_first", "reference")


class TopKFirst(LogitsProcessor):
    """Top-k, then temperature and top-p within the k, then one draw: scores 0 on the drawn token, -inf elsewhere."""

    supports_continuous_batching = True

    def __init__(self, temperature: float, top_k: int, top_p: float) -> None:
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.calls = 0

    def nucleus(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, token ids) of each row's top-k, best first; tokens past the top-p mass weigh 0. The weights are
        the tokens' probabilities up to one factor per row (multinomial renormalises)."""
        values, index = torch.topk(scores, min(self.top_k, scores.shape[-1]), dim=-1)  # descending
        probs = torch.softmax(values / self.temperature, dim=-1)
        above = torch.cumsum(probs, dim=-1) - probs  # the mass ranked above each token (0 for the first)
        return probs.masked_fill(above >= self.top_p, 0.0), index

    def __call__(self, input_ids, scores: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        weights, index = self.nucleus(scores)
        token = index.gather(-1, torch.multinomial(weights, 1))
        return torch.full_like(scores, -math.inf).scatter_(-1, token, 0.0)


class AnswerWatch:
    """Whether each sequence's answer is complete, by key (a row, a request id), from the tokens it generated."""

    def __init__(self, tokenizer, rule: str) -> None:
        self.tokenizer, self.rule = tokenizer, rule
        self.done: set = set()

    def complete(self, key, ids: list[int]) -> bool:
        if key not in self.done and ids:
            if answer_end(self.tokenizer.decode(ids, skip_special_tokens=True), self.rule) is not None:
                self.done.add(key)
        return key in self.done


def force(scores: torch.Tensor, rows, token: int) -> torch.Tensor:
    """Rows whose only allowed next token is `token`."""
    scores[rows] = -math.inf
    scores[rows, token] = 0.0
    return scores


class StopAtAnswer(LogitsProcessor):
    """`generate`'s rows (prompt of `prompt_length` tokens) end with EOS once their answer is complete."""

    def __init__(self, watch: AnswerWatch, prompt_length: int, eos: int) -> None:
        self.watch, self.prompt_length, self.eos = watch, prompt_length, eos

    def __call__(self, input_ids, scores):
        rows = [r for r, ids in enumerate(input_ids[:, self.prompt_length:].tolist()) if self.watch.complete(r, ids)]
        return force(scores, rows, self.eos) if rows else scores


class StopAtAnswerBatched(ContinuousBatchingLogitsProcessor):
    """The same for continuous batching, whose processors see one row per request with a new token: the flag
    per row is computed from each request's generated tokens when the batch is prepared."""

    supported_kwargs: dict = {}
    ignored_kwargs: tuple = ()

    def __init__(self, watch: AnswerWatch, eos: int) -> None:
        self.watch, self.eos = watch, eos

    def fill_defaults(self, int32_tensor):
        int32_tensor.fill_(0)

    def prepare_tensor_args(self, requests_with_new_token):
        return torch.tensor([int(self.watch.complete(r.state.request_id, [t for t in r.state.generated_tokens if t >= 0]))
                             for r in requests_with_new_token], dtype=torch.int32)

    def __call__(self, scores, tensor_arg):
        rows = tensor_arg[:scores.size(0)].bool()
        return force(scores, rows, self.eos) if bool(rows.any()) else scores


def processors(sampler: str, temperature: float, top_k: int, top_p: float) -> tuple[list, bool]:
    """The sampling processors for a call and whether the engine itself must sample (`do_sample`): greedy calls
    and `topk_first` let the engine take the argmax; `reference` (or top-k off) leaves sampling to transformers."""
    if temperature <= 0:
        return [], False
    if sampler == "topk_first" and top_k > 0:
        return [TopKFirst(temperature, top_k, top_p)], False
    return [], True


def for_generate(custom: list) -> dict:
    """`generate` keyword arguments for these processors."""
    return {"logits_processor": LogitsProcessorList(custom)} if custom else {}


def install_batched(manager, model, generation, custom: list) -> None:
    """Put these processors after the generation config's own into a continuous-batching manager before it
    starts (transformers builds its list from the config alone)."""
    if not custom:
        return
    if not isinstance(getattr(manager, "logit_processor", None), ContinuousBatchingLogitsProcessorList):
        raise RuntimeError("this transformers version's continuous batching has no logit_processor to extend; "
                           "set backend.transformers.batching: static")
    merged = ContinuousBatchingLogitsProcessorList(LogitsProcessorList([*model._get_logits_processor(generation), *custom]))
    merged.tensors_required = sum(isinstance(p, ContinuousBatchingLogitsProcessor) for p in merged.logits_processor)
    manager.logit_processor = merged
