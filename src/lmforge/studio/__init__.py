"""lmforge studio: a local web application to browse, compare, try and launch runs, and reach the applications.

``lmforge studio [--runs DIR ...]`` serves it on 127.0.0.1:7860; :func:`create_app` builds the app
for other ASGI servers and tests. It needs the ``studio`` extra: ``pip install 'lmforge[studio]'``.
"""

from lmforge.studio.app import Studio, create_app
from lmforge.studio.runs import RunIndex, RunInfo, run_detail

__all__ = ["RunIndex", "RunInfo", "Studio", "create_app", "run_detail"]
