"""Load generator, baseline relay and the performance suite (not part of the test run)."""
