"""Short links and what backs them: the links themselves (`links.py`), batched download statistics
(`stats.py`), the sweep of spent links (`sweep.py`), files uploaded to get a link (`uploads.py`) and
resumable tus uploads (`resumable.py`)."""

from .links import KEEP, MAX_DOWNLOADS, MAX_EXPIRES_IN, LinkPage, Links, check_limits, is_spent
from .resumable import Resumables
from .stats import DownloadStats
from .sweep import LinkSweepReport, delete_links, sweep_links
from .uploads import LinkUpload, LinkUploads

__all__ = [
    "KEEP",
    "MAX_DOWNLOADS",
    "MAX_EXPIRES_IN",
    "DownloadStats",
    "LinkPage",
    "LinkSweepReport",
    "LinkUpload",
    "LinkUploads",
    "Links",
    "Resumables",
    "check_limits",
    "delete_links",
    "is_spent",
    "sweep_links",
]
