"""Evaluation: benchmark examples, model-side harness (generation, closed-set scoring), scorers."""
