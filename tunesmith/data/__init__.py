"""Data: read every input format into Conversations, validate, measure, curate, split."""
