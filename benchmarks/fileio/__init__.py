"""Atomic file writes and inter-process locks."""
