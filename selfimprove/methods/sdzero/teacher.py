"""SD-Zero's teacher context: the teacher reads the rollout y, the control phrase its grade chose, then y again."""
from __future__ import annotations

from selfimprove.methods.sdzero.config import control_phrase
from selfimprove.training.self_distill import TeacherContext


class RevisionContext(TeacherContext):
    """`chat(x) + y + P_r + y`: the teacher knows whether y was right and what a reviser would keep. The first copy
    of y drops its EOS, so the assistant turn goes on."""

    name = "revision"
    needs_reward = True

    def sequence(self, d, seed, prompt, y, correct):
        body = y[:-1] if y and y[-1] == d.eos else y
        return prompt + body + d.text_ids(control_phrase(correct)) + y

    def fields(self, seed, correct):
        return {"control": None if correct is None else ("correct" if correct else "wrong")}
