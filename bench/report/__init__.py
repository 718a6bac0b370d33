"""Showing a run: rich tables (tables.py) with their text helpers (formatting.py), Markdown
(markdown.py), plots (plots.py), the closing summary (summary.py) and `bench list` (listing.py).
Each loops over the op kinds (bench/kinds/): a kind with a presentation of its own draws it.
"""
