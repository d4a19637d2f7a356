"""Short public links to objects (/s/<id>); filled in by the short links issue."""
