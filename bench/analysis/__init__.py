"""bench/analysis."""
