"""Codec objects behind one interface (base.py), the container format (container.py, header.py,
varint.py), header meta schemas (meta.py), the codec registry (registry.py, shipped.py), and one
module per codec family (image.py, audio.py); see docs/codecs.md."""
