"""Plotly figures, one module per topic; every function is pure and returns a ``go.Figure``."""
