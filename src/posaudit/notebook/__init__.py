"""What the analysts' notebooks call: one store and one run, read-only, as Polars frames.

The notebooks in ``notebooks/`` (``NN-topic.py``, jupytext py:percent) tell the audit as a
story; this package holds everything they compute, so a notebook is narrative, parameters,
one-line calls and charts:

- :mod:`posaudit.notebook.session`: :func:`open_audit` (a store and a run, opened read-only
  for each query so a notebook never holds the store), :func:`setup` (offline charts, tables);
- :mod:`~posaudit.notebook.overview`, :mod:`~posaudit.notebook.logins`,
  :mod:`~posaudit.notebook.pins`, :mod:`~posaudit.notebook.refunds`,
  :mod:`~posaudit.notebook.operators`, :mod:`~posaudit.notebook.drilldown`: the frames behind
  each notebook, one module per notebook;
- :mod:`posaudit.notebook.charts`: Altair charts, frame in, chart out;
- :mod:`posaudit.notebook.tables`: the tables as analysts read them (:class:`Table`);
- :mod:`posaudit.notebook.triage`: 07-triage's queue, filters and decision widgets.

Nothing here writes to the store but the triage panel's reviews (through
:mod:`posaudit.review`, under the writer lock), and nothing shows a PIN or a PIN digest.
"""

from __future__ import annotations

from posaudit.notebook.session import Audit, AuditError, first_per, open_audit, setup
from posaudit.notebook.tables import Table

__all__ = ["Audit", "AuditError", "Table", "first_per", "open_audit", "setup"]
