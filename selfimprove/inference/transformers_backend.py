"""The transformers engine: continuous batching (`batching: continuous`, paged attention, a finished
sequence's slot refilled at once) for calls with more sequences than one batch, or static padded
batches through `model.generate`, prompts sorted by length.

Seeds derive from the run seed: static batches reseed per batch, continuous batching once per
call, with every request queued before its loop starts. Either way a rerun on the same platform
draws the same samples; neither is batch-invariant (another batch size, other samples).
"""
from __future__ import annotations

import math

from .base import Backend, BackendConfig, Generation, LocalTokenizer, length_until_eos, prefixes_for, register_backend
from .models import free_memory, load_causal_lm, load_tokenizer, resolve_device


BLOCK_TOKENS = 32  # paged-cache block: the n samples of a prompt share its full blocks
STEP_TOKENS = 512  # tokens one continuous-batching step may carry (prefill chunks + decodes)


@register_backend("transformers")
class TransformersBackend(LocalTokenizer, Backend):
    # loaded once for consecutive stages on one checkpoint (sampling, then judging; base eval, then its maj@k):
    # open_backend closes it before any other model loads and before training, so one model is in memory at a time
    keep_warm = True

    def __init__(self, model_path, config: BackendConfig | None = None) -> None:
        super().__init__(model_path, config or BackendConfig())
        import torch

        self.torch = torch
        self.device = resolve_device(self.config.device)
        self.tokenizer = load_tokenizer(model_path, padding_side="left", prompt_format=self.config.prompt_format)
        self.model = load_causal_lm(model_path, self.config.dtype, self.device).eval()
        self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos])
        self._stop = {i for i in ids if i is not None}
        # the token a stop rule forces: one `generate` itself ends on
        self._end = (eos[0] if isinstance(eos, list) else eos) if eos is not None else self.tokenizer.eos_token_id

    @classmethod
    def settings(cls, config: BackendConfig) -> dict:
        return {**super().settings(config), "device": resolve_device(config.device).split(":")[0],
                **{k: getattr(config.transformers, k) for k in ("batching", "max_prompt_tokens", "sampler", "attention")}}

    def run_notes(self) -> dict:
        seeded = "one seed per batch" if self.config.transformers.batching == "static" else "one seed per call, requests queued up front"
        return {"reproducibility": f"{self.config.transformers.batching} batching, {seeded}: samples repeat on the same platform; "
                                   "not batch-invariant"}

    def _batches(self, texts: list[str], per_prompt: int):
        """Yield (indices, encoded batch) with prompts sorted by length to limit padding."""
        lengths = [self.count_tokens(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        step = max(1, self.config.batch_size // max(1, per_prompt))
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                 add_special_tokens=False, truncation=True,
                                 max_length=self.config.transformers.max_prompt_tokens)
            yield idx, {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        if not prompts:
            return []
        from . import decoding

        texts = [self.render(p, pre, params.thinking) for p, pre in zip(prompts, prefixes_for(prompts, assistant_prefix))]
        greedy = params.temperature <= 0
        n = 1 if greedy else params.n
        custom, do_sample = decoding.processors(self.config.transformers.sampler, params.temperature, params.top_k, params.top_p)
        sampling = dict(max_new_tokens=params.max_new_tokens, do_sample=do_sample)
        if do_sample:
            sampling.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        # a call that fits one batch runs as one static batch: continuous batching's set-up and tear-down
        # (~0.4 s a call, mostly its garbage collections) cost more than refilling slots saves there
        fits = len(texts) * n <= self.config.batch_size
        run = self._static if self.config.transformers.batching == "static" or fits else self._continuous
        results = run(texts, params.seed, n, sampling, custom, params.stop, progress)
        if greedy and params.n > 1:  # greedy samples are identical: copy rather than recompute
            results = [r * params.n for r in results]
        return results

    def _completion(self, ids: list[int]) -> Generation:
        n_tok = length_until_eos(ids, self._stop)
        self.counters.generated_tokens += n_tok
        self.counters.sequences += 1
        return Generation(text=self.tokenizer.decode(ids[:n_tok], skip_special_tokens=True), n_tokens=n_tok)

    def _static(self, texts, seed, n, sampling, custom, rule, progress):
        from . import decoding

        torch = self.torch
        results: list[list[Generation]] = [[] for _ in texts]
        for batch_no, (idx, enc) in enumerate(self._batches(texts, n)):
            torch.manual_seed(seed * 1_000_003 + batch_no)
            stop = ([decoding.StopAtAnswer(decoding.AnswerWatch(self.tokenizer, rule), enc["input_ids"].shape[1], self._end)]
                    if rule else [])
            # the n samples of a prompt as n rows, as `num_return_sequences` would lay them out (it refuses a
            # greedy step, which is how the engine reads the sampler's pick)
            rows = {k: v.repeat_interleave(n, dim=0) for k, v in enc.items()}
            with torch.inference_mode():
                out = self.model.generate(**rows, **sampling, **decoding.for_generate(custom + stop))
            for row, seq in enumerate(out[:, enc["input_ids"].shape[1]:]):
                results[idx[row // n]].append(self._completion(seq.tolist()))
            self.counters.generate_calls += len(idx)
            self.counters.prompt_tokens += int(enc["attention_mask"].sum()) * n
            if progress:
                progress(len(idx))
        return results

    def _paged_cache(self, ids: list[list[int]], n: int, max_new_tokens: int) -> dict:
        """A paged KV cache sized for this call. Left to itself, transformers sizes it from free memory,
        and on CPU the attention mask spans the whole cache: 2 GB of mask for a 135M model."""
        in_flight = min(len(ids) * n, self.config.batch_size)
        per_sequence = math.ceil((max(map(len, ids)) + max_new_tokens) / BLOCK_TOKENS)
        return {"block_size": BLOCK_TOKENS, "num_blocks": in_flight * (per_sequence + 1),
                "max_requests_per_batch": in_flight, "max_batch_tokens": max(in_flight, STEP_TOKENS)}

    def _continuous(self, texts, seed, n, sampling, custom, rule, progress):
        """transformers' continuous batching: `n` samples of a prompt fork its prefilled cache."""
        from transformers import ContinuousBatchingConfig, GenerationConfig
        from transformers.generation.continuous_batching.utils import WorkloadHints

        from . import decoding, paged_attention

        ids = [self.tokenizer(t, add_special_tokens=False, truncation=True, max_length=self.config.transformers.max_prompt_tokens).input_ids
               for t in texts]
        generation = GenerationConfig(**{**sampling, "do_sample": True}, num_return_sequences=n,
                                      eos_token_id=sorted(self._stop), pad_token_id=self.tokenizer.pad_token_id)
        # set after validation, which refuses n returns of a greedy step: here the step reads the sampler's pick
        generation.do_sample = sampling["do_sample"]
        batching = ContinuousBatchingConfig(seed=seed, **self._paged_cache(ids, n, sampling["max_new_tokens"]))
        hints = WorkloadHints(max_prompt_length=max(map(len, ids)), max_generated_length=sampling["max_new_tokens"],
                              num_requests=len(ids) * n)
        done: list[dict[int, list[int]]] = [{} for _ in texts]
        stop = [decoding.StopAtAnswerBatched(decoding.AnswerWatch(self.tokenizer, rule), self._end)] if rule else []
        # transformers restores the attention it switched itself; the one switched here is restored here
        restore = None
        if self.config.transformers.attention == "segmented" and paged_attention.applies(self.model.config, self.device):
            restore = self.model.config._attn_implementation
            self.model.set_attn_implementation(paged_attention.register())
        manager = None
        try:
            manager = self.model.init_continuous_batching(generation_config=generation, continuous_batching_config=batching,
                                                          workload_hints=hints)
            decoding.install_batched(manager, self.model, generation, custom + stop)
            # every request is queued before the loop starts, so the schedule (and with it the samples)
            # repeats for the same seed
            owner = {rid: i for i, rid in enumerate(manager.add_requests(ids, max_new_tokens=sampling["max_new_tokens"]))}
            manager.start()
            left = len(ids) * n
            while left:
                out = manager.get_result(timeout=1)
                if out is None or not out.is_finished():
                    if out is None and not manager.is_running():
                        raise RuntimeError(f"continuous batching stopped with {left} sequences unfinished")
                    continue
                if out.error:
                    raise RuntimeError(f"continuous batching failed on {out.request_id}: {out.error}")
                parent, _, child = out.request_id.partition("__child#")
                i = owner[parent]
                done[i][int(child) + 1 if child else 0] = out.generated_tokens
                left -= 1
                if len(done[i]) == n and progress:
                    progress(1)
        finally:
            if manager is not None:
                manager.stop(block=True, timeout=30)
                manager.destroy()
            if restore is not None:
                self.model.set_attn_implementation(restore)
        self.counters.generate_calls += len(ids)
        self.counters.prompt_tokens += sum(map(len, ids)) * n
        return [[self._completion(d[k]) for k in sorted(d)] for d in done]

    def choice_probs(self, prompts, assistant_prefix, choices):
        torch = self.torch
        choice_ids = self.verdict_ids(assistant_prefix, choices)
        texts = [self.render(p, assistant_prefix, "off") for p in prompts]
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
