"""flowshot.realtime."""
