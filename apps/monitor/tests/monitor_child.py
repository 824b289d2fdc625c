"""Replays a stream with the keyword scorer, slowly, so that a test can kill it mid-replay (run as a script)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lmforge_monitor.entities import Watchlist  # noqa: E402
from lmforge_monitor.pipeline import Monitor  # noqa: E402
from lmforge_monitor.replay import replay  # noqa: E402
from lmforge_monitor.sentiment import Scorer  # noqa: E402
from monitor_fakes import keyword_scores, make_config  # noqa: E402


def slow_scores(texts: list[str]) -> list:
    time.sleep(float(sys.argv[3]))
    return keyword_scores(texts)


if __name__ == "__main__":
    tmp, stream = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = make_config(tmp)
    monitor = Monitor(cfg, Scorer(slow_scores, batch=8), Watchlist.from_yaml(cfg.path(cfg.paths.watchlist)))
    result = replay(monitor, stream, batch=10, progress=lambda pos, total, r: print(pos, flush=True))
    print("done", result.stored, flush=True)
