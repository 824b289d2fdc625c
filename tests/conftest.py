"""Fixtures of the tests in this folder. The helpers they are built from live in forge_testing.py, a module
with a name of its own: the applications' test folders are collected in the same run with conftest modules
of their own, so `from conftest import ...` would reach whichever was loaded last."""

from forge_testing import tiny_bert, tiny_llama, toy_csv  # noqa: F401  (fixtures pytest collects from here)
