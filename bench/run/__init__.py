"""bench/run."""
