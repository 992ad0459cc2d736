"""Self-consistency agreement: the share of a seed's candidates with the same answer. No model call."""
from __future__ import annotations

from selfimprove.verification.strategy import Strategy, register_strategy
from selfimprove.verification.votes import Call, decide


@register_strategy
class Agreement(Strategy):
    name = "agreement"
    calls_model = False
    uses_threshold = True

    def judge(self, backend, items, stage, seed):
        results = []
        for it in items:
            call = Call(0, "agreement", "", f"share={it.agreement:.3f}", "Y" if it.agreement >= stage.threshold else "N",
                        it.agreement, model_call=False)
            results.append(decide([call], stage, f"agreement: answer share {it.agreement:.2f} (threshold {stage.threshold})"))
        return results
