"""Runnable examples of tunesmith end to end."""
