"""Command-line clients of the public API (no AWS access needed)."""
