"""The promotion gate decides on evidence, and a refusal names the condition that failed."""
import pytest

from selfimprove.rounds.config import TrackConfig
from selfimprove.rounds.gate import Evidence, decide
from selfimprove.validation import InputError


def test_a_challenger_is_promoted_only_when_the_lower_bound_clears_the_margin():
    track = TrackConfig(name="arith", margin=0.0)
    assert decide(Evidence(0.08, 0.035, 0.13, 200), track) == (
        True, "promoted: paired delta +0.080 [+0.035, +0.130] on 200 items")
    promoted, reason = decide(Evidence(0.02, -0.01, 0.05, 200), track)
    assert not promoted and "lower bound is not above the margin +0.000" in reason
    assert not decide(Evidence(0.08, 0.035, 0.13, 200), TrackConfig(name="arith", margin=0.05))[0]
    assert decide(Evidence(0.0, 0.0, 0.0, 0), track) == (False, "refused: no held-out item was scored for both models")


def test_the_bounds_themselves_computed_from_counts_as_the_flow_does():
    """A lower bound equal to the margin does not clear it; a guard drop of exactly the tolerance and a diversity of
    exactly the floor are allowed; one item more either way decides the other way. Values come from counts, with
    the rounding of the subtractions the flow makes."""
    guard_drop = 30 / 100 - 32 / 100  # -0.020000000000000018
    assert guard_drop < -0.02  # floating point puts it past the bound
    track = TrackConfig(name="t", margin=0.05, guard_tolerance=0.02, diversity_floor=2.3)
    at_margin = Evidence(delta=0.1, ci_low=0.35 - 0.30, ci_high=0.2, n=100)  # 0.04999999999999999
    assert not decide(at_margin, track)[0] and "not above the margin +0.050" in decide(at_margin, track)[1]
    assert not decide(Evidence(0.1, 0.05, 0.2, 100), track)[0]
    above = dict(delta=0.1, ci_low=0.06, ci_high=0.2, n=100)
    assert decide(Evidence(**above), track)[0]
    assert decide(Evidence(**above, guard_delta=guard_drop, diversity=23 / 10), track) == (
        True, "promoted: paired delta +0.100 [+0.060, +0.200] on 100 items; guard set -0.020")
    assert decide(Evidence(**above, guard_delta=29 / 100 - 32 / 100), track)[1] == (
        "refused: guard set pass@1 fell by 0.030 (tolerance 0.020)")
    assert "below the floor 2.30" in decide(Evidence(**above, diversity=22 / 10), track)[1]


def test_the_guard_set_and_the_diversity_floor_can_refuse_a_better_challenger():
    track = TrackConfig(name="arith", guard_tolerance=0.02, diversity_floor=1.5)
    better = dict(delta=0.1, ci_low=0.05, ci_high=0.15, n=200)
    assert decide(Evidence(**better, guard_delta=-0.01, diversity=2.0), track)[0]
    assert decide(Evidence(**better, guard_delta=-0.05), track) == (
        False, "refused: guard set pass@1 fell by 0.050 (tolerance 0.020)")
    assert "below the floor 1.50" in decide(Evidence(**better, diversity=1.2), track)[1]


@pytest.mark.parametrize("settings,field", [({"name": "a b"}, "track.name"), ({"name": "t", "guard_tolerance": 2}, "track.guard_tolerance")])
def test_bad_track_settings_are_refused_by_name(settings, field):
    with pytest.raises(InputError) as e:
        TrackConfig(**settings)
    assert e.value.field == field


def test_rounds_stop_on_low_precision_or_repeated_refusals():
    from selfimprove.rounds.gate import stop_reason

    track = TrackConfig(name="t", min_precision=0.6, stop_after_refusals=2)
    promoted, refused = {"round": 1, "promoted": True, "precision": 0.8}, {"round": 2, "promoted": False, "precision": 0.7}
    assert stop_reason([promoted], track) is None and stop_reason([promoted, refused], track) is None
    assert stop_reason([promoted, refused, {**refused, "round": 3}], track) == "2 refused round(s) in a row (track.stop_after_refusals)"
    assert "round 2's training examples were right 0.50 of the time" in stop_reason([promoted, {**refused, "precision": 0.5}], track)
    assert stop_reason([{**refused, "precision": None}] * 2, TrackConfig(name="t", stop_after_refusals=0)) is None


def test_a_guard_drop_inside_its_noise_does_not_refuse_and_one_beyond_it_does():
    """The rule is a paired test: a 5-point drop whose interval reaches above -tolerance is noise on a 100-item
    guard set; the same drop with its whole interval below -tolerance refuses. The diversity floor likewise."""
    track = TrackConfig(name="arith", guard_tolerance=0.02, diversity_floor=1.5)
    better = dict(delta=0.1, ci_low=0.05, ci_high=0.15, n=200)
    noisy = Evidence(**better, guard_delta=-0.05, guard_ci_low=-0.12, guard_ci_high=0.02)
    assert decide(noisy, track) == (True, "promoted: paired delta +0.100 [+0.050, +0.150] on 200 items; "
                                          "guard set -0.050 [-0.120, +0.020]")
    worse = Evidence(**better, guard_delta=-0.06, guard_ci_low=-0.09, guard_ci_high=-0.03)
    assert decide(worse, track) == (False, "refused: guard set pass@1 fell by 0.060; its interval [-0.090, -0.030] "
                                           "lies below -0.020 (the tolerance)")
    at_bound = Evidence(**better, guard_delta=-0.05, guard_ci_low=-0.08, guard_ci_high=-0.02)
    assert decide(at_bound, track)[0]  # an interval reaching the bound itself is not below it
    assert decide(Evidence(**better, diversity=1.2, diversity_ci_low=1.0, diversity_ci_high=1.6), track)[0]
    assert decide(Evidence(**better, diversity=1.2, diversity_ci_low=1.0, diversity_ci_high=1.4), track)[1] == (
        "refused: 1.20 [1.00, 1.40] distinct answers per seed is below the floor 1.50, the whole interval")
