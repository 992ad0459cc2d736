"""Per-token divergences between student and teacher next-token distributions (SD-Zero phase 2).

`divergence(student_logits, teacher_logits, kind, top_k, support)` returns one value per
position. The teacher is always detached. Kinds: `forward_kl` KL(t‖s), `reverse_kl` KL(s‖t),
`mixture` (mix·forward + (1−mix)·reverse, the released SD-Zero code uses 0.5), and `jsd`
(generalized Jensen–Shannon with weight beta). With `top_k`, the support is the teacher's
top-k tokens, and `support` says how the distributions are restricted to it:
- `renormalized` (default): both distributions are renormalised on the top-k set;
- `tail_bucket`: the top-k probabilities plus one bucket holding the rest of the mass;
- `truncated`: raw probabilities on the top-k set, not renormalised. This is here to be
  tested against: its reverse KL carries a "+1" gradient term that lowers the student's
  probability of every top-k token at once, pushing mass outside the set. Never train on it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("forward_kl", "reverse_kl", "mixture", "jsd")
SUPPORTS = ("renormalized", "tail_bucket", "truncated")


def _restrict(student_logits, teacher_logits, top_k: int | None, support: str):
    """(log p_student, log p_teacher) over the categories compared, last dimension."""
    log_s, log_t = F.log_softmax(student_logits.float(), -1), F.log_softmax(teacher_logits.float(), -1)
    if top_k is None or top_k >= student_logits.shape[-1]:
        return log_s, log_t
    idx = teacher_logits.topk(top_k, dim=-1).indices
    if support == "renormalized":
        return (F.log_softmax(student_logits.float().gather(-1, idx), -1),
                F.log_softmax(teacher_logits.float().gather(-1, idx), -1))
    ls, lt = log_s.gather(-1, idx), log_t.gather(-1, idx)
    if support == "truncated":
        return ls, lt

    def with_tail(lp):  # log(1 - sum p), computed stably
        tail = torch.log1p(-lp.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))
        return torch.cat([lp, tail], dim=-1)

    return with_tail(ls), with_tail(lt)


def _kl(log_p, log_q):
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kind: str = "reverse_kl",
               top_k: int | None = 64, support: str = "renormalized", mix: float = 0.5, beta: float = 0.5) -> torch.Tensor:
    """Divergence per position (shape = logits.shape[:-1]); gradients flow to the student only."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if support not in SUPPORTS:
        raise ValueError(f"support must be one of {SUPPORTS}, got {support!r}")
    log_s, log_t = _restrict(student_logits, teacher_logits.detach(), top_k, support)
    if kind == "forward_kl":
        return _kl(log_t, log_s)
    if kind == "reverse_kl":
        return _kl(log_s, log_t)
    if kind == "mixture":
        return mix * _kl(log_t, log_s) + (1 - mix) * _kl(log_s, log_t)
    # generalized JSD: beta·KL(t‖m) + (1−beta)·KL(s‖m), m = beta·t + (1−beta)·s
    log_m = torch.logsumexp(torch.stack([log_t + torch.log(torch.tensor(beta)),
                                         log_s + torch.log(torch.tensor(1 - beta))]), dim=0)
    return beta * _kl(log_t, log_m) + (1 - beta) * _kl(log_s, log_m)
