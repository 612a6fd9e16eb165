"""Fixtures of the serving tests: the February flights partition and a fresh storage root."""

from tests.support.scoring import february, february_file, root

__all__ = ["february", "february_file", "root"]
