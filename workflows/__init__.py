"""Temporal workflows: deterministic code only; activities are imported through the
sandbox's pass-through so that workflows can name them with types."""
