"""SQLAlchemy models of the Quay registry tables Wharf reads and writes.

Table, column, index and constraint names, types and nullability are Quay's (from its
migrations); `tests/integration/db` compares them with a database built from Quay's DDL.
"""

from wharf.db.models.base import (
    NAMING_CONVENTION,
    Base,
    localnow,
    now_ms,
    utcnow,
)
from wharf.db.models.manifests import (
    INDEX_STATUS_PENDING,
    INDEXER_VERSION,
    Label,
    LabelSourceType,
    Manifest,
    ManifestBlob,
    ManifestChild,
    ManifestLabel,
    ManifestSecurityStatus,
    MediaType,
    Tag,
    TagKind,
)
from wharf.db.models.storage import (
    BlobUpload,
    ImageStorage,
    ImageStorageLocation,
    ImageStoragePlacement,
    UploadedBlob,
)
from wharf.db.models.users import (
    DEFAULT_REMOVED_TAG_EXPIRATION_S,
    QuotaNamespaceSize,
    QuotaRepositorySize,
    Repository,
    RepositoryActionCount,
    RepositoryKind,
    RepositoryPermission,
    RepositorySearchScore,
    RepositoryState,
    RobotAccountToken,
    Role,
    User,
    Visibility,
)

__all__ = [
    "DEFAULT_REMOVED_TAG_EXPIRATION_S",
    "INDEXER_VERSION",
    "INDEX_STATUS_PENDING",
    "NAMING_CONVENTION",
    "Base",
    "BlobUpload",
    "ImageStorage",
    "ImageStorageLocation",
    "ImageStoragePlacement",
    "Label",
    "LabelSourceType",
    "Manifest",
    "ManifestBlob",
    "ManifestChild",
    "ManifestLabel",
    "ManifestSecurityStatus",
    "MediaType",
    "QuotaNamespaceSize",
    "QuotaRepositorySize",
    "Repository",
    "RepositoryActionCount",
    "RepositoryKind",
    "RepositoryPermission",
    "RepositorySearchScore",
    "RepositoryState",
    "RobotAccountToken",
    "Role",
    "Tag",
    "TagKind",
    "UploadedBlob",
    "User",
    "Visibility",
    "localnow",
    "now_ms",
    "utcnow",
]
