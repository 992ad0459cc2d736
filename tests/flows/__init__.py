"""Tests of selfimprove's flows layer."""
