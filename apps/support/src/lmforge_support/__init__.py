"""lmforge-support: a customer-service assistant built on lmforge."""

__version__ = "0.1.0"
