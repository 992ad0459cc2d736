"""Test-time baselines, above judging and evaluation because they compose both: UQ-TTC (`uq_ttc.py`) samples n
answers per held-out item, judges them with the run's cascade and answers with the first accepted one."""
