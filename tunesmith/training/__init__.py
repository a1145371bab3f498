"""Supervised fine-tuning: config, hyperparameters, collation, the training loop."""
