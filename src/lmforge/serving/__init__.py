"""Serving: an engine with HTTP and Ray Serve faces over it."""
