"""The S3-compatible HTTP API over the storage engine.

`app.S3App` is one Starlette endpoint: `router` classifies a request into an AWS operation, `auth`
checks its SigV4/SigV2 signature (`sigv4`, `sigv2`: the pure crypto), and the `HANDLERS` table
dispatches it to `ops/<family>.py` (`handle_get_object` and friends). Errors are `errors.S3Error`
with a registered `S3Code`, rendered as S3's XML in one place; the engine's errors are translated
there too. `conditional` (Range, preconditions) and `formdata` (the streaming form parser) are
shared with the short links edge. Imports flow to `objstore` only.
"""
