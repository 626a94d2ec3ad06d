"""Adapters that run af2's fused ops inside other projects' models."""
