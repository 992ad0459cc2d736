"""The SD-Zero divergence kernel in isolation, held against hand computations."""
import math

import pytest
import torch

from selfimprove.training.divergence import KINDS, divergence

V = 50


def logits(seed, shape=(3, 5, V), scale=3.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("kind", KINDS)
def test_top_k_of_the_whole_vocabulary_equals_the_full_divergence(kind):
    s, t = logits(0), logits(1)
    full = divergence(s, t, kind, top_k=None)
    assert torch.allclose(divergence(s, t, kind, top_k=V, support="renormalized"), full, atol=1e-6)
    assert (full >= -1e-6).all() and full.shape == (3, 5)


@pytest.mark.parametrize("kind", KINDS)
def test_divergences_are_zero_exactly_when_the_distributions_match(kind):
    s = logits(2)
    assert divergence(s, s.clone(), kind, top_k=8).abs().max() < 1e-6
    assert divergence(s, logits(3), kind, top_k=8).min() > 0


def test_forward_and_reverse_kl_match_torch():
    s, t = logits(4), logits(5)
    ls, lt = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    fwd = torch.nn.functional.kl_div(ls, lt, log_target=True, reduction="none").sum(-1)
    assert torch.allclose(divergence(s, t, "forward_kl", top_k=None), fwd, atol=1e-5)
    rev = torch.nn.functional.kl_div(lt, ls, log_target=True, reduction="none").sum(-1)
    assert torch.allclose(divergence(s, t, "reverse_kl", top_k=None), rev, atol=1e-5)


def _mass_outside_top_k_after_steps(support, k=8, steps=20, lr=0.5):
    teacher = logits(6, (1, 1, V))
    student = teacher.clone().requires_grad_(True)  # the student starts exactly at the teacher
    top = teacher.topk(k, -1).indices
    for _ in range(steps):
        loss = divergence(student, teacher, "reverse_kl", top_k=k, support=support).sum()
        grad, = torch.autograd.grad(loss, student)
        with torch.no_grad():
            student -= lr * grad
    p = torch.softmax(student.detach(), -1)
    return 1 - p.gather(-1, top).sum().item(), 1 - torch.softmax(teacher, -1).gather(-1, top).sum().item()


def test_renormalised_top_k_reverse_kl_keeps_mass_in_the_top_k_set():
    renorm, start = _mass_outside_top_k_after_steps("renormalized", steps=100, lr=2.0)
    assert abs(renorm - start) < 1e-6  # at the teacher its gradient is zero: nothing moves
    tail, _ = _mass_outside_top_k_after_steps("tail_bucket", steps=100, lr=2.0)
    assert abs(tail - start) < 1e-6


def test_raw_truncated_reverse_kl_pushes_mass_out_of_the_top_k_set():
    truncated, start = _mass_outside_top_k_after_steps("truncated", steps=100, lr=2.0)
    assert truncated > start + 0.1  # the "+1" term: a student equal to its teacher is pushed away (measured 0.018 -> 0.21)


def test_the_teacher_gets_no_gradient():
    s, t = logits(7).requires_grad_(True), logits(8).requires_grad_(True)
    divergence(s, t, "mixture", top_k=16).sum().backward()
    assert s.grad is not None and t.grad is None


# --- hand-computed references: top_k < V, and the student's top-k set differs from the teacher's ---------------------
# Plain-float arithmetic on literal probabilities, independent of the kernel's torch code.

TEACHER_P = [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]  # teacher's top-3: tokens 0, 1, 2
STUDENT_P = [0.05, 0.10, 0.05, 0.30, 0.30, 0.20]  # student's top-3: tokens 3, 4, 5 (no overlap)
K = 3


def _kl_hand(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _restrict_hand(p, support, idx):
    head = [p[i] for i in idx]
    if support == "renormalized":
        return [x / sum(head) for x in head]
    if support == "tail_bucket":
        return head + [1 - sum(head)]
    return head  # truncated


def _hand(kind, support, idx=(0, 1, 2), mix=0.5, beta=0.5):
    t, s = _restrict_hand(TEACHER_P, support, idx), _restrict_hand(STUDENT_P, support, idx)
    if kind == "forward_kl":
        return _kl_hand(t, s)
    if kind == "reverse_kl":
        return _kl_hand(s, t)
    if kind == "mixture":
        return mix * _kl_hand(t, s) + (1 - mix) * _kl_hand(s, t)
    m = [beta * a + (1 - beta) * b for a, b in zip(t, s)]
    return beta * _kl_hand(t, m) + (1 - beta) * _kl_hand(s, m)


def _as_logits(p):
    return torch.tensor([[math.log(x) + 1.7 for x in p]], dtype=torch.float64)  # any shift: logits, not log-probs


@pytest.mark.parametrize("support", ["renormalized", "tail_bucket", "truncated"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_and_support_matches_a_hand_computation_on_the_teachers_top_k(kind, support):
    got = divergence(_as_logits(STUDENT_P), _as_logits(TEACHER_P), kind, top_k=K, support=support, mix=0.3, beta=0.7)
    want = _hand(kind, support, mix=0.3, beta=0.7)
    assert got.shape == (1,) and got.item() == pytest.approx(want, rel=1e-5, abs=1e-7)
    # the same sum over the student's top-k set, or over the full vocabulary, is another number: the test tells them apart
    assert abs(_hand(kind, support, idx=(3, 4, 5), mix=0.3, beta=0.7) - want) > 1e-3
    if support != "truncated":
        full = divergence(_as_logits(STUDENT_P), _as_logits(TEACHER_P), kind, top_k=None, mix=0.3, beta=0.7).item()
        assert abs(full - want) > 1e-3


def test_a_worked_example_by_hand():
    # renormalised on the teacher's top-3 {0, 1, 2}: t = (.40, .25, .15)/.80, s = (.05, .10, .05)/.20
    t, s = (0.5, 0.3125, 0.1875), (0.25, 0.5, 0.25)
    forward = 0.5 * math.log(2.0) + 0.3125 * math.log(0.625) + 0.1875 * math.log(0.75)
    reverse = 0.25 * math.log(0.5) + 0.5 * math.log(1.6) + 0.25 * math.log(0.25 / 0.1875)
    assert _kl_hand(t, s) == pytest.approx(forward) and _kl_hand(s, t) == pytest.approx(reverse)
    got = {kind: divergence(_as_logits(STUDENT_P), _as_logits(TEACHER_P), kind, top_k=K).item() for kind in KINDS}
    assert got["forward_kl"] == pytest.approx(forward, rel=1e-5)  # 0.1578...
    assert got["reverse_kl"] == pytest.approx(reverse, rel=1e-5)
    assert got["mixture"] == pytest.approx(0.5 * forward + 0.5 * reverse, rel=1e-5)
    m = [(a + b) / 2 for a, b in zip(t, s)]
    assert got["jsd"] == pytest.approx(0.5 * _kl_hand(t, m) + 0.5 * _kl_hand(s, m), rel=1e-5)


def test_the_gradient_reaches_tokens_outside_the_top_k_only_through_the_tail_bucket():
    for support, outside in (("renormalized", False), ("tail_bucket", True)):
        s = _as_logits(STUDENT_P).requires_grad_(True)
        divergence(s, _as_logits(TEACHER_P), "reverse_kl", top_k=K, support=support).sum().backward()
        assert s.grad[0, :K].abs().max() > 1e-3
        assert (s.grad[0, K:].abs().max() > 1e-3) == outside, (support, s.grad)
    # the renormalised gradient equals a finite difference of the hand computation
    s = _as_logits(STUDENT_P).requires_grad_(True)
    divergence(s, _as_logits(TEACHER_P), "reverse_kl", top_k=K).sum().backward()
    eps = 1e-6
    for i in range(K):
        bumped = list(STUDENT_P)
        bumped[i] *= math.exp(eps)  # +eps on logit i (the rest renormalise away)
        z = sum(bumped)
        t_r = _restrict_hand(TEACHER_P, "renormalized", (0, 1, 2))
        s_r = _restrict_hand([b / z for b in bumped], "renormalized", (0, 1, 2))
        assert s.grad[0, i].item() == pytest.approx((_kl_hand(s_r, t_r) - _hand("reverse_kl", "renormalized")) / eps,
                                                    rel=1e-3, abs=1e-6)
