"""Tests of selfimprove's data layer."""
