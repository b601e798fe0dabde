"""What every registry request needs: storage, the database, and where new uploads go."""

from __future__ import annotations

from dataclasses import dataclass, field

from wharf.db.engine import Database
from wharf.storage import DistributedStorage


@dataclass
class RegistryContext:
    storage: DistributedStorage
    db: Database
    location_ids: dict[str, int]
    """`imagestoragelocation` ids of the configured locations."""
    public_on_create: bool = False
    """Repositories created by a push are public (mirror mode) or private (Quay's default)."""
    max_blob_size: int = 20 * 1024**3
    """Quay's MAXIMUM_LAYER_SIZE default (20G)."""
    upload_locations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.upload_locations:
            self.upload_locations = self.storage.preferred_locations[:1]

    @property
    def upload_location(self) -> str:
        return self.upload_locations[0]
