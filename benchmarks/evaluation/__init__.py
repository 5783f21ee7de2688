"""Scoring: sliding-window inference, metrics, statistics, TTA, morphology."""
