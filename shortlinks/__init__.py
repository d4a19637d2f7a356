"""Short links to stored files, and the REST API that pyBlobServer's frontends use.

`routes` serves `/s/<id>` publicly (Range and conditional requests, a preview page); `api` is the
links API (`/api/links`), `rest` the file uploads and listing (`/upload`, `/list`, `/user`, ...),
with `tus` (resumable uploads) and `websocket` (`/upload_socket`) beside it. Errors are JSON, from
one table in `errors`. The engine keeps the links (`objstore.links`); this package imports `s3api`
only for what both edges share (Range and conditions, the form parser, HTTP helpers).
"""
