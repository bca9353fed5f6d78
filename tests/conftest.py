"""Settings for the whole suite."""

from hypothesis import HealthCheck, settings

# Property tests check results, not speed: on a shared 2-core machine a generated case may take
# longer than Hypothesis' 200 ms deadline, or its data generation trip the too-slow health check,
# without anything being wrong (seen under load in tests/unit/test_quantity.py).
settings.register_profile("kybernetes", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kybernetes")
