"""Plot set-up shared by the notebooks.

Importing this module sets plotly's renderer to `plotly_mimetype+notebook`: the figure
renders in JupyterLab (mimetype) and carries plotly.js inline for nbconvert's HTML and
slides (notebook), so decks work offline. `notebook_connected` would need a CDN.
"""

from __future__ import annotations

import plotly.io as pio

pio.renderers.default = "plotly_mimetype+notebook"
