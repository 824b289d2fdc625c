"""Personalized movie recommendations on lmforge."""
