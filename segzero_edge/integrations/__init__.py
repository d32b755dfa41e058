"""Glue for robot frameworks, as pure functions that need none of them installed."""
