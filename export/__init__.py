"""flowshot.export."""
