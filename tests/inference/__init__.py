"""Tests of selfimprove's inference layer."""
