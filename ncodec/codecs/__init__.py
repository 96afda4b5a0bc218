"""Codec objects, the container format and the registry of shipped codecs (later issues)."""
