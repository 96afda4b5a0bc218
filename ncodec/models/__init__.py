"""Model building blocks: image and audio models, quantizers, exact integer networks, fast
transforms, and weights files of every format (weights.py)."""
