"""Moving in: `pyblob import ...` brings data from elsewhere into a store (`pyblobserver.py`)."""
