"""The app's data operations, independent of HTTP: projects, images, mask-native annotations
with an operation log (history, undo/redo), review status, import and export.

Every method commits before it returns; a change to an image's annotations checks and bumps
the image's ``version`` in the same transaction (``StaleVersion`` when another edit came
first), so no acknowledged edit is lost and no update silently overwrites another.
"""


from masklab.app.store.annotations import AnnotationsMixin
from masklab.app.store.base import (
    EXPORT_FORMATS,
    INTERNAL_DIRS,
    PALETTE,
    Forbidden,
    NotFound,
    Snapshot,
    StaleVersion,
    StoreBase,
    check_attribute_values,
    file_sha256,
    mask_fields,
    normalise_attributes,
    normalise_classes,
)
from masklab.app.store.images import ImageFilter, ImagesMixin
from masklab.app.store.interchange import InterchangeMixin
from masklab.app.store.jobs import JobsMixin, JobStopped
from masklab.app.store.models import ModelsMixin
from masklab.app.store.projects import ProjectsMixin

__all__ = [
    "EXPORT_FORMATS",
    "INTERNAL_DIRS",
    "PALETTE",
    "Forbidden",
    "ImageFilter",
    "JobStopped",
    "NotFound",
    "Snapshot",
    "StaleVersion",
    "Store",
    "check_attribute_values",
    "file_sha256",
    "mask_fields",
    "normalise_attributes",
    "normalise_classes",
]


class Store(ProjectsMixin, ImagesMixin, AnnotationsMixin, InterchangeMixin, JobsMixin,
            ModelsMixin, StoreBase):
    """The app's data: ``projects`` (projects), ``images`` (files, lists, status),
    ``annotations`` (edits, history, tracking), ``interchange`` (import, export), ``jobs``
    (background work), ``models`` (trained models, uncertainty, queue order)."""
