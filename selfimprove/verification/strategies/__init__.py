"""The built-in judge strategies; importing this package registers them."""
from selfimprove.verification.strategies import agreement, cycle_consistency, verdict  # noqa: F401
