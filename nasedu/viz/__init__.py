"""Drawings for the course notebooks.

Cells are drawn the way the DARTS paper draws them (Liu, Simonyan & Yang,
"DARTS: Differentiable Architecture Search", ICLR 2019, Figures 4-5):
inputs c_{k-2} and c_{k-1} on the left, numbered intermediate nodes, the
output c_{k} on the right and one labelled edge per operation. graphviz
draws them when its `dot` program is installed; otherwise plotly does.
"""
from .cells import cell_svg, draw_cell, draw_genotypes, draw_mixed_cell, save_cell_svgs
from .dashboard import Dashboard

__all__ = ["draw_cell", "draw_mixed_cell", "cell_svg", "save_cell_svgs", "draw_genotypes", "Dashboard"]
