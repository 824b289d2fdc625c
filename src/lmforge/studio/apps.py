"""The applications the studio's navigation links to: installed ones are found through the ``lmforge.apps`` entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

GROUP = "lmforge.apps"
# The applications of this repository, shown (as not installed) even before they are.
KNOWN = {"support": "Support assistant", "monitor": "Market monitor", "recommend": "Recommender"}


@dataclass(frozen=True)
class AppLink:
    """One application in the navigation.

    Attributes:
        name: Its name (``lmforge app NAME``).
        title: What the navigation shows.
        installed: Whether its package is installed here.
        url: Where its page is served (``--app NAME=URL``), or None when the studio was not told.
    """

    name: str
    title: str
    installed: bool
    url: str | None

    @property
    def start(self) -> str:
        """The command that starts it, or installs it first."""
        return f"lmforge app {self.name} serve" if self.installed else f"pip install -e apps/{self.name}"


def discover(urls: dict[str, str] | None = None) -> list[AppLink]:
    """The known applications and any other installed one, with the page URLs given to the studio."""
    urls = urls or {}
    installed = {point.name for point in entry_points(group=GROUP)}
    names = list(KNOWN) + sorted(installed - set(KNOWN))
    return [AppLink(n, KNOWN.get(n, n.title()), n in installed, urls.get(n)) for n in names]
