"""The SD-Zero divergence kernel in isolation."""
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
