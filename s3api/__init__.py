"""The S3-compatible HTTP API; filled in by the S3 API issue."""
