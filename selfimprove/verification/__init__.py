"""Verification: judge strategies, the cascade that votes with them, rule filters, selection, telemetry, calibration."""
