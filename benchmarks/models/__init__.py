"""Encoders, losses, the mmselfsup bridge, weights, segmenters and probes, foreign checkpoints."""
