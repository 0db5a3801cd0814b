"""Pictures for the course notebooks.

- `diagram`: architectures described once (nodes, edges, labels, colours) and
  rendered by graphviz, or by plotly where graphviz's `dot` is missing; every
  architecture's ``draw()`` goes through it.
- `cells`: DARTS cells drawn the way the DARTS paper draws them (Liu,
  Simonyan & Yang, ICLR 2019, Figures 4-5), the mixed cell of a supernet, and
  several genotypes side by side.
- `live`: live views that never hold training back (`LiveView`: a figure and
  HTML panes pushed at a bounded rate; widget, Colab and no-front-end backends).
- `panels`: the search figure (curves, a heatmap per distribution table, entropy).
- `dashboard`: `Dashboard`, the search callback that puts them together.
"""
from .cells import cell_svg, draw_cell, draw_genotypes, draw_mixed_cell, save_cell_svgs
from .dashboard import Dashboard
from .live import LiveView, Throttle

__all__ = ["draw_cell", "draw_mixed_cell", "cell_svg", "save_cell_svgs", "draw_genotypes", "Dashboard", "LiveView",
           "Throttle"]
