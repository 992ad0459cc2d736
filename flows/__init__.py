"""Prefect flows: the DAGs composed from the stage tasks."""
