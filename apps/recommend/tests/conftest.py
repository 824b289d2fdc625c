"""Fixtures of the recommender's tests; the helpers live in recommend_testing.py (see tests/conftest.py)."""

from recommend_testing import movie_dir, tiny_encoder  # noqa: F401  (fixtures pytest collects from here)
