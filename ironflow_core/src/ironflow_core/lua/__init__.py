"""lua package."""
