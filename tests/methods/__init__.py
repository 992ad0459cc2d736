"""Tests of selfimprove's methods layer."""
