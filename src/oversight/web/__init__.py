"""The oversight web app: review queue, transcripts, monitor dashboards and eval runs for a
team, over the store (FastAPI, server-rendered pages, a JSON API under ``/api``).

Start it with ``oversight web --db URL``; create the first admin with
``oversight users add NAME --role admin``.
"""

from oversight.web.app import create_app
from oversight.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
