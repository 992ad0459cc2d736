"""Tests of selfimprove's evaluation layer."""
