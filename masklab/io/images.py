"""Images and label PNGs: EXIF orientation, RGB/RGBA/gray/16-bit, a pixel limit."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.io.atomic import atomic_path
from masklab.types.semantic import default_palette

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_MAX_PIXELS = 2**28  # ~268 MP, e.g. 16384 x 16384; MASKLAB_MAX_PIXELS overrides


def max_pixels() -> int:
    """The pixel limit for decoding images (``MASKLAB_MAX_PIXELS``, default 2**28)."""
    value = os.environ.get("MASKLAB_MAX_PIXELS")
    if value is None:
        return DEFAULT_MAX_PIXELS
    try:
        return int(value)
    except ValueError:
        raise InputError(f"MASKLAB_MAX_PIXELS must be an integer, got {value!r}") from None


def _open(path: str | os.PathLike, limit: int | None):
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we apply our own limit, with a clearer message
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except UnidentifiedImageError:
        raise InputError("not a readable image (unknown or corrupt format)", path) from None
    except OSError as e:
        raise InputError(f"cannot open image: {e}", path) from None
    limit = max_pixels() if limit is None else limit
    w, h = img.size
    if w * h > limit:
        img.close()
        raise InputError(f"image is {w}x{h} = {w * h} pixels, over the limit of {limit} "
                         "(set MASKLAB_MAX_PIXELS or max_pixels= to raise it)", path)
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, without decoding the pixels."""
    img = _open(path, limit=2**62)
    with img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def read_image(path: str | os.PathLike, mode: str = "rgb", *,
               max_pixels: int | None = None) -> np.ndarray:
    """Read an image as a numpy array, upright (EXIF orientation applied).

    ``mode``: ``"rgb"`` → ``(H, W, 3)`` uint8; ``"rgba"`` → ``(H, W, 4)`` uint8; ``"gray"`` →
    ``(H, W)`` uint8; ``"unchanged"`` → the stored samples (16-bit stays uint16, palette
    images give their indices). 16-bit images are scaled to 8 bits in the other modes.
    """
    from PIL import ImageOps

    if mode not in ("rgb", "rgba", "gray", "unchanged"):
        raise ValueError(f"mode must be rgb, rgba, gray or unchanged, got {mode!r}")
    img = _open(path, max_pixels)
    try:
        with img:
            img = ImageOps.exif_transpose(img)
            if mode == "unchanged":
                return np.array(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.array(img).astype(np.float64)
                top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
                arr = np.clip(np.round(arr / top * 255), 0, 255).astype(np.uint8)
                if mode == "gray":
                    return arr
                arr = np.repeat(arr[..., None], 3, axis=2)
                if mode == "rgba":
                    arr = np.concatenate([arr, np.full((*arr.shape[:2], 1), 255, np.uint8)], 2)
                return arr
            target = {"rgb": "RGB", "rgba": "RGBA", "gray": "L"}[mode]
            return np.array(img.convert(target))
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"cannot decode image: {e}", path) from None


def write_image(path: str | os.PathLike, image: np.ndarray, *, quality: int = 95) -> Path:
    """Write an ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 (or uint16 gray PNG) atomically.

    The format follows the extension (PNG, JPEG, ...).
    """
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 (or uint16 gray), got {arr.dtype}")
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise InputError(f"unknown image extension {ext!r}", path)
    if arr.dtype == np.uint16 and (arr.ndim != 2 or ext not in (".png", ".tif", ".tiff")):
        raise ValueError("uint16 images must be single-channel PNG or TIFF")
    img = Image.fromarray(arr)
    kwargs = {"quality": quality} if ext in (".jpg", ".jpeg", ".webp") else {}
    if ext in (".jpg", ".jpeg") and img.mode == "RGBA":
        img = img.convert("RGB")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
           ".tiff": "TIFF", ".webp": "WEBP"}[ext]
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt, **kwargs)
    return path


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label map: palette PNGs give their indices, gray PNGs their values (8 or 16 bit).

    An RGB image is rejected (colour-coded labels need the palette to decode; see
    ``SemanticMap``), as is an image with an alpha channel.
    """
    img = _open(path, None)
    with img:
        if img.mode in ("P", "L", "I;16", "I;16B", "I;16L", "I", "1"):
            arr = np.array(img)
        else:
            raise InputError(f"label PNG must be palette or single-channel, got mode {img.mode}",
                             path)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return arr


def write_label_png(path: str | os.PathLike, labels: np.ndarray, *,
                    palette: np.ndarray | bool | None = None, atomic: bool = True) -> Path:
    """Write a label map atomically (``atomic=False``: a plain write, for files written
    into an ``atomic.staged_folder``).

    Ids below 256 become an indexed PNG with ``palette`` (``None``: the VOC colour map) or a
    plain 8-bit gray PNG with ``palette=False``; larger ids a 16-bit gray PNG.
    """
    from PIL import Image

    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {lab.dtype} {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() > 65535):
        raise ValueError("label ids must be within [0, 65535]")
    path = Path(path)
    if lab.size and lab.max() > 255:
        img = Image.fromarray(lab.astype(np.uint16))
    else:
        img = Image.fromarray(lab.astype(np.uint8))
        if palette is not False:
            pal = default_palette(256) if palette is None or palette is True \
                else np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
            full = np.zeros((256, 3), np.uint8)
            full[: len(pal)] = pal
            img = img.convert("P")
            img.putpalette(full.reshape(-1).tolist())
    if not atomic:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, format="PNG")
        return path
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def find_images(inputs: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted list of image files."""
    import glob

    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(f for f in p.glob(pattern)
                            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            if not matches:
                raise InputError("no such file, folder or matching glob", item)
            found += [m for m in matches if m.suffix.lower() in IMAGE_EXTENSIONS]
    return found
