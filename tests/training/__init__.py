"""Tests of selfimprove's training layer."""
