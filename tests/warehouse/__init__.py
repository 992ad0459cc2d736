"""Tests of selfimprove's warehouse layer."""
