"""Data: read files, validate rows, normalize, split, tokenize with a cache, batch."""
