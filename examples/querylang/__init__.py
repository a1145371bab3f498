"""Shelf: a small pipeline query language, its dataset, generator, grader and the end-to-end pipeline."""
