"""Trainer, losses and datasets (later issues)."""
