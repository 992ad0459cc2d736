"""On-policy self-distillation from a frozen teacher that reads another context, with teacher synchronisation.

Per step: the student samples one response y per prompt x; the reward grades y; the teacher (a
frozen copy of the student) reads y again in the context its `TeacherContext` builds: SD-Zero's
`chat(x) + y + P_r + y` (it knows whether y was right), or OPSD's `chat(x + privileged
information) + y`. On each token of the teacher's copy of y, the loss is the divergence between the
student's next-token distribution (at the same token of y after chat(x)) and the teacher's, over the
teacher's top-k tokens renormalised on that support (`selfimprove.training.divergence`); the teacher
runs under no-grad, so this is the stop-gradient top-k form. The loss is averaged over tokens.

Synchronisation copies the student into the teacher every `sync_every` steps and/or when the
reward on held-out seeds (greedy) stops improving. Every step, sample and sync is returned as rows
for the lake, with the teacher context's own fields (its control phrase, or its PI source and hash).
"""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch

from selfimprove.inference.base import length_until_eos
from selfimprove.inference.models import load_causal_lm, load_tokenizer, resolve_device, save_checkpoint
from selfimprove.inference.prompt_format import render as render_prompt
from selfimprove.training.divergence import divergence
from selfimprove.generation.sampling import user_message
from selfimprove.training.distill_config import DistillConfig
from selfimprove.verification.rewards import Reward


class TeacherContext:
    """How the teacher reads a student's rollout y of a seed. A subclass writes `sequence`; `fields` adds
    its own columns to the rollout's row. `needs_reward`: the context depends on y's grade, so an
    ungraded rollout is not trained on."""

    name = "base"
    needs_reward = False
    source: str | None = None  # where the teacher's extra information comes from (recorded on every step)

    def sequence(self, d: "Distiller", seed: dict, prompt: list[int], y: list[int], correct: bool | None) -> list[int]:
        """The teacher's token ids, ending with y itself."""
        raise NotImplementedError

    def fields(self, seed: dict, correct: bool | None) -> dict:
        return {}


class Distiller:
    """Student, teacher (reading its `TeacherContext`), optimiser and tokenizer for one distillation run."""

    def __init__(self, model_path: str | Path, config: DistillConfig, prompt_name: str, teacher_context: TeacherContext,
                 device: str = "auto", prompt_format: str = "auto") -> None:
        self.config, self.prompt_name, self.teacher_context = config, prompt_name, teacher_context
        self.device = resolve_device(device)
        self.tokenizer = load_tokenizer(model_path, prompt_format=prompt_format)
        self.student = load_causal_lm(model_path, "float32", self.device)
        self.teacher = copy.deepcopy(self.student).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.student.parameters(), lr=config.learning_rate, weight_decay=0.0)
        eos = self.student.generation_config.eos_token_id
        self.stop = {i for i in [self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])] if i is not None}
        self.eos = self.tokenizer.eos_token_id

    # -- token sequences -------------------------------------------------------------------------
    def chat_ids(self, messages: list[dict]) -> list[int]:
        """The prompt format's rendering of these messages, up to the assistant's turn."""
        text = render_prompt(self.tokenizer, messages)
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def prompt_ids(self, question: str) -> list[int]:
        """What the student reads: the question in the run's prompt file, nothing else."""
        return self.chat_ids(user_message(question, self.prompt_name))

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def _autocast(self):
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=torch.bfloat16, enabled=self.config.autocast == "bfloat16")

    @torch.no_grad()
    def rollout(self, prompts: list[list[int]], greedy: bool, seed: int) -> list[list[int]]:
        """One response per prompt, as token ids, ending with EOS when the model stopped by itself."""
        width = max(map(len, prompts))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        torch.manual_seed(seed)
        kwargs = {"do_sample": False} if greedy else {"do_sample": True, "temperature": self.config.temperature,
                                                       "top_p": self.config.top_p, "top_k": 0}
        self.student.eval()
        with self._autocast():
            out = self.student.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.config.max_new_tokens,
                                        pad_token_id=pad, **kwargs)
        responses = []
        for row in out[:, width:].tolist():
            n = length_until_eos(row, self.stop)
            responses.append(row[:n] + [self.eos] if n < len(row) else row)
        return responses

    def text(self, response: list[int]) -> str:
        return self.tokenizer.decode(response, skip_special_tokens=True)

    def contexts(self, seed: dict, prompt: list[int], y: list[int], correct: bool | None):
        """Student sequence, teacher sequence, and the positions whose logits predict each token of y."""
        student = prompt + y
        teacher = self.teacher_context.sequence(self, seed, prompt, y, correct)
        s_pos = list(range(len(prompt) - 1, len(prompt) - 1 + len(y)))
        t_start = len(teacher) - len(y) - 1
        return student, teacher, s_pos, list(range(t_start, t_start + len(y)))

    def _logits_at(self, model, seqs: list[list[int]], positions: list[list[int]]) -> torch.Tensor:
        """Logits at the given positions of each sequence, concatenated: [sum(len(pos)), vocab]."""
        width = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
        with self._autocast():
            logits = model(input_ids=ids, attention_mask=mask).logits
        rows = torch.tensor([b for b, pos in enumerate(positions) for _ in pos], device=self.device)
        cols = torch.tensor([p for pos in positions for p in pos], device=self.device)
        return logits[rows, cols].float()

    # -- one optimiser step ----------------------------------------------------------------------
    def step(self, seeds: list[dict], reward: Reward, seed: int) -> tuple[dict, list[dict]]:
        cfg = self.config
        prompts = [self.prompt_ids(s["question"]) for s in seeds]
        responses = self.rollout(prompts, greedy=False, seed=seed)
        texts = [self.text(y) for y in responses]
        rewards = reward.grade(seeds, texts)
        needs = self.teacher_context.needs_reward
        trained = [i for i, r in enumerate(rewards) if responses[i] and (r is not None or not needs)]
        graded = [i for i, r in enumerate(rewards) if r is not None]
        samples = [{"seed_id": s["seed_id"], "text": t, "n_tokens": len(y), "reward": r, "divergence": None,
                    **self.teacher_context.fields(s, r)}
                   for s, t, y, r in zip(seeds, texts, responses, rewards)]
        metrics = {"mean_reward": _mean([float(rewards[i]) for i in graded]), "graded": len(graded),
                   "response_tokens": _mean([float(len(y)) for y in responses]), "loss": None, "kl_reverse": None,
                   "loss_tokens": 0}
        if not trained:
            return metrics, samples
        per_token, kl = self.update([seeds[i] for i in trained], [prompts[i] for i in trained],
                                    [responses[i] for i in trained], [rewards[i] for i in trained])
        start = 0
        for i in trained:
            n = len(responses[i])
            samples[i]["divergence"] = float(per_token[start:start + n].mean())
            start += n
        metrics.update(loss=float(per_token.mean()), kl_reverse=float(kl.mean()), loss_tokens=int(per_token.numel()))
        return metrics, samples

    def update(self, seeds: list[dict], prompts: list[list[int]], responses: list[list[int]], correct: list[bool | None]):
        """One optimiser step on these responses; (per-token loss, per-token reverse KL), both detached."""
        cfg = self.config
        built = [self.contexts(s, p, y, c) for s, p, y, c in zip(seeds, prompts, responses, correct)]
        with torch.no_grad():
            teacher_logits = self._logits_at(self.teacher, [b[1] for b in built], [b[3] for b in built])
        self.student.train()
        student_logits = self._logits_at(self.student, [b[0] for b in built], [b[2] for b in built])
        per_token = divergence(student_logits, teacher_logits, cfg.divergence, cfg.top_k, cfg.support, mix=cfg.mix,
                               beta=cfg.beta)
        self.optimizer.zero_grad(set_to_none=True)
        per_token.mean().backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            kl = divergence(student_logits.detach(), teacher_logits, "reverse_kl", cfg.top_k, "renormalized")
        return per_token.detach(), kl

    @torch.no_grad()
    def heldout_reward(self, seeds: list[dict], reward: Reward) -> float | None:
        texts = []
        for start in range(0, len(seeds), self.config.batch_size * 2):
            chunk = seeds[start:start + self.config.batch_size * 2]
            texts += [self.text(y) for y in self.rollout([self.prompt_ids(s["question"]) for s in chunk], True, 0)]
        graded = [float(r) for r in reward.grade(seeds, texts) if r is not None]
        return _mean(graded)

    def sync(self) -> None:
        self.teacher.load_state_dict(self.student.state_dict())

    def snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.student.state_dict().items()}

    def restore(self, state: dict) -> None:
        self.student.load_state_dict(state)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def distill(model_path: str | Path, train_seeds: list[dict], val_seeds: list[dict], reward: Reward,
            config: DistillConfig, prompt_name: str, output_dir: str | Path, teacher_context: TeacherContext,
            progress=None, device: str = "auto", prompt_format: str = "auto") -> dict:
    """Distil from `model_path` with this teacher context; save the student to `output_dir`. Returns steps,
    samples and syncs rows.

    With held-out checks and `keep_best`, the best student so far (step 0: the starting model) is kept:
    a plateau sync copies it into both teacher and student, so a student that regressed since is not
    what the teacher learns from, and it is the student saved at the end.
    """
    if not train_seeds:
        raise ValueError("no seeds to distil on (check the seeds' split and distill.val_size)")
    d = Distiller(model_path, config, prompt_name, teacher_context, device, prompt_format)
    order = list(train_seeds)
    random.Random(config.seed).shuffle(order)
    steps, samples, syncs = [], [], []
    checks = config.eval_every > 0 and bool(val_seeds)
    best = d.heldout_reward(val_seeds, reward) if checks else None
    best_step, best_state = 0, (d.snapshot() if checks and config.keep_best else None)
    context = {"teacher": teacher_context.name, "pi_source": teacher_context.source}
    if checks:  # step 0: the held-out reward of the starting model
        steps.append({"step": 0, "val_reward": best, "teacher_syncs": 0, **context})
    stale = 0
    for step in range(1, config.steps + 1):
        start = time.time()
        batch = [order[((step - 1) * config.batch_size + j) % len(order)] for j in range(config.batch_size)]
        metrics, rows = d.step(batch, reward, seed=config.seed * 1_000_003 + step)
        samples += [{"step": step, **r} for r in rows]
        val, reasons, source = None, [], step
        if checks and step % config.eval_every == 0:
            val = d.heldout_reward(val_seeds, reward)
            if val is not None and (best is None or val > best + config.min_delta):
                best, best_step, stale = val, step, 0
                if config.keep_best:
                    best_state = d.snapshot()
            else:
                stale += 1
            if config.sync_on_plateau and stale >= config.patience:
                reasons.append("plateau")
                stale = 0
                if best_state is not None and best_step != step:  # back to the best student, then sync
                    d.restore(best_state)
                    source = best_step
        if config.sync_every and step % config.sync_every == 0:
            reasons.append("every_n")
        if reasons:
            d.sync()
            syncs.append({"step": step, "reason": "+".join(reasons), "val_reward": val, "source_step": source})
        steps.append({"step": step, **metrics, "val_reward": val, "teacher_syncs": len(syncs), **context,
                      "learning_rate": config.learning_rate, "seconds": round(time.time() - start, 3)})
        if progress:
            progress(1)
    saved = steps[-1]["step"] if steps else 0
    if best_state is not None and best_step != saved:
        d.restore(best_state)
        saved = best_step
    for row in steps:
        row["saved"] = row["step"] == saved
    save_checkpoint(d.student, d.tokenizer, output_dir)
    return {"path": str(output_dir), "steps": steps, "samples": samples, "syncs": syncs, "saved_step": saved}
