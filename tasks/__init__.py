"""Prefect tasks: one thin task per stage. Inputs and outputs are manifests, never DataFrames."""
