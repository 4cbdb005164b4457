"""handpose."""
