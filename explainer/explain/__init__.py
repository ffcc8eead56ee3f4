"""Explain layer: the method registry, attribution runners and cost estimates."""
