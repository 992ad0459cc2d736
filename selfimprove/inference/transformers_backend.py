"""The transformers engine: static batches through `model.generate`, prompts sorted by length.

One seed per batch, derived from the run seed, so reruns reproduce the same samples on the
same platform (CPU bf16 sampling is not bitwise repeatable across machines).
"""
from __future__ import annotations

import math

from .base import (Backend, BackendConfig, Generation, LocalTokenizer, length_until_eos, prefixes_for, register_backend,
                   single_token_id)
from .models import free_memory, load_causal_lm, load_tokenizer, resolve_device


@register_backend("transformers")
class TransformersBackend(LocalTokenizer, Backend):

    def __init__(self, model_path, config: BackendConfig | None = None) -> None:
        super().__init__(model_path, config or BackendConfig())
        import torch

        self.torch = torch
        self.device = resolve_device(self.config.device)
        self.tokenizer = load_tokenizer(model_path, padding_side="left")
        self.model = load_causal_lm(model_path, self.config.dtype, self.device).eval()
        self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos])
        self._stop = {i for i in ids if i is not None}

    @classmethod
    def settings(cls, config: BackendConfig) -> dict:
        return {**super().settings(config), "device": resolve_device(config.device).split(":")[0]}

    def _batches(self, texts: list[str], per_prompt: int):
        """Yield (indices, encoded batch) with prompts sorted by length to limit padding."""
        lengths = [self.count_tokens(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        step = max(1, self.config.batch_size // max(1, per_prompt))
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                 add_special_tokens=False, truncation=True,
                                 max_length=self.config.max_prompt_tokens)
            yield idx, {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        torch = self.torch
        texts = [self.render(p, pre) for p, pre in zip(prompts, prefixes_for(prompts, assistant_prefix))]
        results: list[list[Generation]] = [[] for _ in texts]
        greedy = params.temperature <= 0
        n = 1 if greedy else params.n
        for batch_no, (idx, enc) in enumerate(self._batches(texts, n)):
            torch.manual_seed(params.seed * 1_000_003 + batch_no)
            kwargs = dict(max_new_tokens=params.max_new_tokens, do_sample=not greedy, num_return_sequences=n)
            if not greedy:
                kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
            with torch.inference_mode():
                out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            for row, seq in enumerate(new):
                ids = seq.tolist()
                n_tok = length_until_eos(ids, self._stop)
                text = self.tokenizer.decode(ids[:n_tok], skip_special_tokens=True)
                results[idx[row // n]].append(Generation(text=text, n_tokens=n_tok))
                self.counters.generated_tokens += n_tok
            self.counters.generate_calls += len(idx)
            self.counters.sequences += len(new)
            self.counters.prompt_tokens += int(enc["attention_mask"].sum()) * n
            if progress:
                progress(len(idx))
        if greedy and params.n > 1:  # greedy samples are identical: copy rather than recompute
            results = [r * params.n for r in results]
        return results

    def choice_probs(self, prompts, assistant_prefix, choices):
        torch = self.torch
        choice_ids = [single_token_id(c, self.tokenizer(c, add_special_tokens=False).input_ids) for c in choices]
        texts = [self.render(p, assistant_prefix) for p in prompts]
        results: list[dict[str, float]] = [{} for _ in texts]
        for idx, enc in self._batches(texts, 1):
            with torch.inference_mode():
                logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)[:, choice_ids]
            for row, i in enumerate(idx):
                results[i] = {c: math.exp(float(v)) for c, v in zip(choices, logp[row])}
            self.counters.scored_prompts += len(idx)
            self.counters.prompt_tokens += int(enc["attention_mask"].sum())
        return results

    def close(self) -> None:
        self.model = self.tokenizer = None
        free_memory()
