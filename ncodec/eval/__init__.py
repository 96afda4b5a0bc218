"""Metrics, classical baselines, BD-rate and plots (later issues)."""
