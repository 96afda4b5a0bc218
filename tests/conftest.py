import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# CI machines are small and shared: no per-example deadlines, fixed example counts.
settings.register_profile(
    "ncodec", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ncodec")
