"""Tests of selfimprove's tasks layer."""
