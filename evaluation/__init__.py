"""flowshot.evaluation."""
