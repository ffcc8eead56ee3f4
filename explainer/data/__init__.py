"""Data layer: images (validated loading) and datasets behind one call."""
