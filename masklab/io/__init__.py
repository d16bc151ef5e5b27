"""Reading and writing images, label maps and annotation formats; every write is atomic."""

from masklab.io.atomic import atomic_open, atomic_path, write_json, write_text
from masklab.io.images import (
    IMAGE_EXTENSIONS,
    find_images,
    image_size,
    read_image,
    read_label_png,
    write_image,
    write_label_png,
)

__all__ = [
    "IMAGE_EXTENSIONS", "atomic_open", "atomic_path", "find_images", "image_size",
    "read_image", "read_label_png", "write_image", "write_json", "write_label_png",
    "write_text",
]
