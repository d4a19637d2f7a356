"""One module per family of S3 operations; handlers are named after the AWS operation."""
