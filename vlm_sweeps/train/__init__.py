"""Training: stage plans as parameter groups, and the loop."""
