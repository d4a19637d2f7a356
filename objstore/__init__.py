"""pyblob's storage engine: content-addressed, deduplicated chunks under LMDB metadata.

Knows nothing of HTTP. The web layers (`s3api`, `shortlinks`) call `Store` and translate
`objstore.errors` into their own wire formats.
"""

from .chunks import FileRegion
from .config import S3ChunkSettings, StoreConfig
from .records import BucketRecord, ObjectRecord, UserRecord
from .store import Store

__all__ = ["BucketRecord", "FileRegion", "ObjectRecord", "S3ChunkSettings", "Store", "StoreConfig", "UserRecord"]
