"""flowshot.model."""
