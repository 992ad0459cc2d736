"""The promotion gate: a challenger replaces its track's champion only on evidence, and every decision
says why in one line.

Each condition is a paired test at 95 %: promoted only when the held-out delta's lower bound clears the margin;
refused by the guard set only when the whole interval of its delta lies below -tolerance, and by the diversity
floor only when the whole interval of the challenger's distinct answers per item lies below the floor. A drop
inside the noise of a 100-item guard set is no evidence that the challenger is worse (`bench/gate_noise.py`
measures how often each rule refuses a challenger that is not). Without an interval (None) a point estimate
decides."""
from __future__ import annotations

from dataclasses import dataclass

from selfimprove.rounds.config import TrackConfig

# pass rates are ratios of counts: 0.30 - 0.32 is -0.020000000000000018 in floating point. Values this close to a
# bound count as on it, so a guard drop of exactly the tolerance is allowed and a lower bound equal to the margin
# does not clear it, however the subtraction rounded.
EPS = 1e-9


@dataclass(frozen=True)
class Evidence:
    """The challenger against the champion on the same held-out items (and on the guard set)."""

    delta: float  # paired pass@1 delta, challenger - champion
    ci_low: float
    ci_high: float
    n: int  # held-out items both answered
    guard_delta: float | None = None  # guard-set pass@1, challenger - champion (None: no guard set evaluated)
    diversity: float | None = None  # the challenger's distinct final answers per seed
    guard_ci_low: float | None = None  # the guard delta's paired 95 % interval
    guard_ci_high: float | None = None
    diversity_ci_low: float | None = None  # the distinct answers' 95 % interval (bootstrap over items)
    diversity_ci_high: float | None = None


def decide(evidence: Evidence, track: TrackConfig) -> tuple[bool, str]:
    """(promoted, reason). Every condition is checked; a refusal names the first that failed."""
    e = evidence
    if e.n == 0:
        return False, "refused: no held-out item was scored for both models"
    if e.ci_low <= track.margin + EPS:
        return False, (f"refused: paired delta {e.delta:+.3f} [{e.ci_low:+.3f}, {e.ci_high:+.3f}] on {e.n} items; "
                       f"its lower bound is not above the margin {track.margin:+.3f}")
    guard_high = e.guard_ci_high if e.guard_ci_high is not None else e.guard_delta
    if guard_high is not None and guard_high < -track.guard_tolerance - EPS:
        if e.guard_ci_high is None:
            return False, f"refused: guard set pass@1 fell by {-e.guard_delta:.3f} (tolerance {track.guard_tolerance:.3f})"
        return False, (f"refused: guard set pass@1 fell by {-e.guard_delta:.3f}; its interval "
                       f"{_interval(e.guard_ci_low, e.guard_ci_high).strip()} lies below -{track.guard_tolerance:.3f} "
                       "(the tolerance)")
    diversity_high = e.diversity_ci_high if e.diversity_ci_high is not None else e.diversity
    if track.diversity_floor is not None and diversity_high is not None and diversity_high < track.diversity_floor - EPS:
        return False, (f"refused: {e.diversity:.2f}{_interval(e.diversity_ci_low, e.diversity_ci_high, '.2f')} distinct "
                       f"answers per seed is below the floor {track.diversity_floor:.2f}"
                       + (", the whole interval" if e.diversity_ci_high is not None else ""))
    guard = (f"; guard set {e.guard_delta:+.3f}{_interval(e.guard_ci_low, e.guard_ci_high, '+.3f')}"
             if e.guard_delta is not None else "")
    return True, f"promoted: paired delta {e.delta:+.3f} [{e.ci_low:+.3f}, {e.ci_high:+.3f}] on {e.n} items{guard}"


def _interval(low: float | None, high: float | None, spec: str = "+.3f") -> str:
    return f" [{low:{spec}}, {high:{spec}}]" if low is not None and high is not None else ""


def stop_reason(decisions: list[dict], track: TrackConfig) -> str | None:
    """Why `--rounds` stops after these decisions (oldest first), or None to go on: the last round's training
    examples were right less often than `min_precision`, or the last `stop_after_refusals` were all refused."""
    last = decisions[-1]
    if track.min_precision is not None and last.get("precision") is not None and last["precision"] < track.min_precision:
        return (f"round {last.get('round')}'s training examples were right {last['precision']:.2f} of the time, "
                f"under track.min_precision {track.min_precision:.2f}")
    n = track.stop_after_refusals
    if n and len(decisions) >= n and not any(d["promoted"] for d in decisions[-n:]):
        return f"{n} refused round(s) in a row (track.stop_after_refusals)"
    return None
