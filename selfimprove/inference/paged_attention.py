"""Paged attention for continuous batching that attends within each request only (`attention: segmented`).

transformers' `paged|sdpa` packs every request of a step into one sequence and runs one attention over all of
it with a block-diagonal mask: a decode step of B requests of length L costs B x (B·L) scores where B x L
would do. On CPU, where that runs as a dense masked matmul, it took 65 % of a greedy evaluation's time at
64 requests in flight (profiled with py-spy, `bench/backend_throughput.py` shows the stage effect).

Here decoding requests (one new token each) gather their own keys into a padded [B, L] batch and go through two
batched matmuls; requests still prefilling (a prompt chunk) go one at a time through
`scaled_dot_product_attention`, causal over their cached prefix. The same attention, summed in another order:
float32 outputs match `paged|sdpa` token for token (tests), bfloat16 ones differ by rounding, so the choice is
part of the engine's identity. Measured on 200 greedy evaluation prompts, bf16, 2 cores: 57-64 s dense,
31-37 s segmented.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "paged|segmented"


class _Plan:
    """Where each request of one step sits in the packed queries and keys; built once per step, not per layer."""

    def __init__(self, cu_q: list[int], cu_k: list[int], device) -> None:
        spans = [(cu_q[i], cu_q[i + 1], cu_k[i], cu_k[i + 1]) for i in range(len(cu_q) - 1) if cu_q[i + 1] > cu_q[i]]
        decode = [s for s in spans if s[1] - s[0] == 1]
        self.prefill = [s for s in spans if s[1] - s[0] > 1]
        self.decode_rows = None
        if decode:
            starts = torch.tensor([s[2] for s in decode], device=device)
            lengths = torch.tensor([s[3] - s[2] for s in decode], device=device)
            offsets = torch.arange(int(lengths.max()), device=device)
            self.decode_rows = torch.tensor([s[0] for s in decode], device=device)
            valid = offsets[None, :] < lengths[:, None]
            # padded slots read the request's first key; the mask drops them
            self.decode_keys = torch.where(valid, starts[:, None] + offsets[None, :], starts[:, None])
            self.decode_mask = valid


_last: tuple[tuple, _Plan] | None = None


def _plan(cu_q: torch.Tensor, cu_k: torch.Tensor) -> _Plan:
    global _last
    key, last = (tuple(cu_q.tolist()), tuple(cu_k.tolist())), _last
    if last is None or last[0] != key:
        last = _last = (key, _Plan(list(key[0]), list(key[1]), cu_q.device))
    return last[1]


def applies(model_config, device: str) -> bool:
    """Whether `segmented` runs: on CPU (where it was measured; on a GPU transformers' own choice stands, flash
    paged attention where installed), for models whose every layer attends fully (sliding-window layers, as in
    Gemma or Mistral, need the window mask transformers' own paged attentions apply)."""
    layer_types = getattr(model_config, "layer_types", None) or []
    return (device.split(":")[0] == "cpu" and not getattr(model_config, "sliding_window", None)
            and all(t == "full_attention" for t in layer_types))


def _decode(q, k, v, valid, scaling):
    """One new token per request: q [B, heads, dim], k and v [B, L, kv_heads, dim], valid [B, L] -> [B, heads, dim].
    Written out as two batched matmuls: on CPU, `scaled_dot_product_attention` with a mask took ten times as long
    for these shapes (a microbenchmark at B=64, L=100, bf16)."""
    b, heads, dim = q.shape
    kv_heads = k.shape[2]
    qg = q.view(b, kv_heads, heads // kv_heads, dim)  # query heads grouped under the key head they share
    scores = torch.matmul(qg, k.permute(0, 2, 3, 1)).float() * (scaling if scaling is not None else dim ** -0.5)
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(weights, v.permute(0, 2, 1, 3)).reshape(b, heads, dim)


def segmented_paged_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """query [1, heads, tokens, dim] -> ([1, tokens, heads, dim], None), as transformers' paged attentions."""
    cache = kwargs.pop("cache", None)
    if cache is None:
        raise ValueError(f"`{NAME}` runs inside continuous batching only (it needs the paged cache)")
    key, value = cache.update(key_states=key, value_states=value, layer_idx=module.layer_idx,
                              read_index=kwargs["read_index"], write_index=kwargs["write_index"])  # [keys, kv_heads, dim]
    cu_k = kwargs["cu_seq_lens_k"]
    plan = _plan(kwargs["cu_seq_lens_q"], cu_k["full_attention"] if isinstance(cu_k, dict) else cu_k)
    q = query[0].transpose(0, 1)  # [tokens, heads, dim]
    out = q.new_zeros(q.shape)
    if plan.decode_rows is not None:
        out.index_copy_(0, plan.decode_rows, _decode(q[plan.decode_rows], key[plan.decode_keys], value[plan.decode_keys],
                                                     plan.decode_mask, scaling))
    for q0, q1, k0, k1 in plan.prefill:
        qp = q[q0:q1].transpose(0, 1).unsqueeze(0)  # [1, heads, n, dim]
        kp = key[k0:k1].transpose(0, 1).unsqueeze(0)
        vp = value[k0:k1].transpose(0, 1).unsqueeze(0)
        n, past = q1 - q0, (k1 - k0) - (q1 - q0)
        # query j sits at position past + j and sees keys 0..past + j
        mask = None if past == 0 else (torch.arange(k1 - k0, device=q.device)[None, :]
                                       <= past + torch.arange(n, device=q.device)[:, None])
        op = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, is_causal=past == 0, scale=scaling,
                                            enable_gqa=True)
        out[q0:q1] = op[0].transpose(0, 1)
    return out.unsqueeze(0), None


def register() -> str:
    """Make `paged|segmented` an attention implementation transformers can switch a model to."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, segmented_paged_attention)
    return NAME
