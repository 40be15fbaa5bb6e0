"""formc: reads the handwritten tallies on photos of Indonesian election result forms."""

__version__ = "0.1.0"
