"""bench/cli."""
