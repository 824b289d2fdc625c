"""lmforge-monitor: financial news and posts in, sentiment per company, trends, alerts and a dashboard out."""

__version__ = "0.1.0"
