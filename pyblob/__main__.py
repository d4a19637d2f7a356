"""`python -m pyblob` runs the same command line as the `pyblob` script."""

from .cli import main

if __name__ == "__main__":
    main()
