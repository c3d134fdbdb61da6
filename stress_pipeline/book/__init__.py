"""Order-book depth: the canonical depth table, loaders, dense books, synthetic books, fills that walk them.

Imports point one way: market <- book <- scenarios / trading / simulation.
"""

from stress_pipeline.book.dense import book_at, books_table, dense_books, panel_books
from stress_pipeline.book.loaders import load_depth
from stress_pipeline.book.schema import DEPTH_COLUMNS, DEPTH_SCHEMA, DenseBook, DepthError, conform_depth
from stress_pipeline.book.synthetic import synthetic_books

__all__ = [
    "DEPTH_COLUMNS", "DEPTH_SCHEMA", "DenseBook", "DepthError", "book_at", "books_table", "conform_depth",
    "dense_books", "load_depth", "panel_books", "synthetic_books",
]
