"""Tests of selfimprove's generation layer."""
