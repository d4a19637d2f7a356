"""What a CompleteMultipartUpload request asserts about its upload, checked before any part is joined.

AWS's rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
a part checksum that differs from the one stored with the part is `InvalidPart`; an upload created
with a COMPOSITE checksum needs every part's checksum in the request (`InvalidRequest`); a checksum
type other than the one declared at creation is `InvalidRequest`; a whole-object checksum that does
not match the one computed from the parts is `BadDigest`; `x-amz-mp-object-size` must be the size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BadDigest, InvalidPart, InvalidRequest
from .records import PartRecord, UploadRecord


def default_checksum_type(algorithm: str | None) -> str:
    """S3's default: FULL_OBJECT for CRC64NVME (the only type it supports), COMPOSITE otherwise."""
    return "FULL_OBJECT" if algorithm in (None, "CRC64NVME") else "COMPOSITE"


@dataclass
class CompletionChecks:
    part_checksums: dict[int, dict[str, str]] = field(default_factory=dict)  # part number -> algorithm -> value
    object_checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> whole-object value
    checksum_type: str | None = None  # x-amz-checksum-type of the request
    object_size: int | None = None  # x-amz-mp-object-size of the request

    def verify(self, upload: UploadRecord, parts: list[PartRecord], computed: dict[str, str]) -> None:
        """Raise as AWS would if the request disagrees with the upload; `computed`: the object's checksum."""
        self._check_type(upload)
        size = sum(p.size for p in parts)
        if self.object_size is not None and self.object_size != size:
            raise InvalidRequest(f"The object size given, {self.object_size}, does not match the parts' total: {size}")
        for part in parts:
            self._check_part(upload, part)
        for algorithm, value in self.object_checksums.items():
            self._check_object(upload, algorithm, value, computed)

    def _check_type(self, upload: UploadRecord) -> None:
        declared = upload.checksum_type or default_checksum_type(upload.checksum_algorithm)
        if self.checksum_type is not None and upload.checksum_algorithm and self.checksum_type != declared:
            raise InvalidRequest(
                f"The upload was created using the {declared} checksum mode. "
                "The complete request must use the same checksum mode."
            )

    def _check_part(self, upload: UploadRecord, part: PartRecord) -> None:
        given = self.part_checksums.get(part.number, {})
        algorithm = upload.checksum_algorithm
        for alg, value in given.items():
            if algorithm is not None and alg != algorithm:
                raise InvalidRequest(
                    f"The upload was created using a {algorithm.lower()} checksum; "
                    f"part {part.number} gives a {alg.lower()} checksum."
                )
            if part.checksums.get(alg) != value.strip():
                raise InvalidPart(f"The {alg} checksum of part {part.number} does not match the part uploaded.")
        composite = (upload.checksum_type or default_checksum_type(algorithm)) == "COMPOSITE"
        if algorithm is not None and composite and algorithm not in given:
            raise InvalidRequest(
                f"The upload was created using a {algorithm.lower()} checksum. The complete request "
                f"must include the checksum for each part. It was missing for part {part.number} in the request."
            )

    def _check_object(self, upload: UploadRecord, algorithm: str, value: str, computed: dict[str, str]) -> None:
        expected = computed.get(algorithm)
        if expected is None:
            made = upload.checksum_algorithm.lower() if upload.checksum_algorithm else "no"
            raise InvalidRequest(
                f"The upload was created using {made} checksum; "
                f"a {algorithm.lower()} checksum of the whole object cannot be checked."
            )
        if value.strip() not in (expected, expected.split("-")[0]):
            raise BadDigest(
                f"The {algorithm.lower()} you specified for the full object did not match the calculated checksum."
            )
