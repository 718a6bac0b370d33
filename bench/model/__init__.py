"""bench/model."""
