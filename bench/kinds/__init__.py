"""bench/kinds."""
