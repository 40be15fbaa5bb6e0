"""formc: reads the handwritten tallies on photos of Indonesian election result forms."""

__version__ = "0.1.0"
# What every formc process logs (tracebacks of internal errors among it): stderr, one line a record, with the process.
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
