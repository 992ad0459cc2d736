"""Tests of selfimprove's verification layer."""
