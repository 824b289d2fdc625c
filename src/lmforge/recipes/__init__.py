"""Recipes: each CLI verb is one short function that wires config, data, model, loop and artifacts."""
