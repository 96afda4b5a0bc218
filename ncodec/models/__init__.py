"""Model building blocks: layers, quantizers, image/audio/video/INR models (later issues)."""
