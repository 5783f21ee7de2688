"""Micrograph data: sources, file sets, image reading, patches, subsets, augmentation, SSL views, leakage, preparation."""
