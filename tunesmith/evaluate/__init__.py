"""Evaluation: graders, batched generation, runs, paired comparison, reports."""
