"""Drawing results: mask/box/keypoint overlays, semantic maps with a legend, alpha on a
checkerboard, side-by-side panels. Every function takes and returns ``(H, W, 3)`` uint8 RGB."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from masklab.types import Alpha, Boxes, Keypoints, Masks, SemanticMap

# 20 well-separated colours (Tableau 20 order, saturated first); id i gets PALETTE[i % 20]
PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
], dtype=np.uint8)


def color_for(key: int) -> tuple[int, int, int]:
    """The stable colour of an id (class, instance or track)."""
    return tuple(int(v) for v in PALETTE[int(key) % len(PALETTE)])  # type: ignore[return-value]


def _rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    return np.ascontiguousarray(img[..., :3])


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _instance_keys(n: int, labels, track_ids, color_by: str) -> np.ndarray:
    if color_by == "label" and labels is not None:
        return np.asarray(labels)
    if color_by == "track" and track_ids is not None:
        return np.asarray(track_ids)
    return np.arange(n)


def _caption(i: int, names, scores) -> str:
    parts = []
    if names is not None:
        parts.append(names[i])
    if scores is not None:
        parts.append(f"{scores[i]:.2f}")
    return " ".join(parts)


def _draw_captions(img: np.ndarray, anchors, captions, colors, font_size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font(font_size)
    for (x, y), text, color in zip(anchors, captions, colors, strict=True):
        if not text:
            continue
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        h = bottom - top
        y0 = max(0, y - h - 4)
        draw.rectangle((x, y0, x + right - left + 4, y0 + h + 4), fill=tuple(color))
        draw.text((x + 2, y0 + 2 - (top - y)), text, fill=(255, 255, 255), font=font)
    return np.asarray(pil)


def draw_boxes(image: np.ndarray, boxes: Boxes, *, labels: bool = True, thickness: int = 2,
               color_by: str = "label", font_size: int = 12) -> np.ndarray:
    """Rectangles with ``class score`` captions."""
    import cv2

    img = _rgb(image).copy()
    keys = _instance_keys(len(boxes), boxes.labels, boxes.track_ids, color_by)
    colors = [color_for(k) for k in keys]
    for b, c in zip(np.round(boxes.xyxy).astype(int), colors, strict=True):
        cv2.rectangle(img, (b[0], b[1]), (b[2] - 1, b[3] - 1), c, thickness)
    if labels:
        captions = [_caption(i, boxes.names, boxes.scores) for i in range(len(boxes))]
        anchors = [(int(b[0]), int(b[1])) for b in boxes.xyxy]
        img = _draw_captions(img, anchors, captions, colors, font_size)
    return img


def overlay_masks(image: np.ndarray, masks: Masks, *, alpha: float = 0.5, boxes: bool = True,
                  labels: bool = True, contours: bool = True, color_by: str = "instance",
                  font_size: int = 12) -> np.ndarray:
    """Blend each mask's colour over the image, outline it, and caption it."""
    import cv2

    img = _rgb(image)
    if img.shape[:2] != masks.size:
        raise ValueError(f"image is {img.shape[:2]}, masks are {masks.size}")
    out = img.astype(np.float32)
    keys = _instance_keys(len(masks), masks.labels, masks.track_ids, color_by)
    colors = [color_for(k) for k in keys]
    dense = masks.to_dense()
    order = np.argsort(-masks.area, kind="stable")  # small masks drawn last, on top
    for i in order:
        m = dense[i]
        out[m] = out[m] * (1 - alpha) + np.array(colors[i], np.float32) * alpha
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if contours:
        for i in order:
            cs, _ = cv2.findContours(dense[i].astype(np.uint8), cv2.RETR_EXTERNAL,
                                     cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, cs, -1, colors[i], 1)
    if boxes and len(masks):
        b = masks.boxes
        if color_by == "instance":
            b.track_ids = np.arange(len(masks))
        out = draw_boxes(out, b, labels=labels, thickness=1,
                         color_by="track" if color_by == "instance" else color_by,
                         font_size=font_size)
    return out


def draw_keypoints(image: np.ndarray, keypoints: Keypoints, *, radius: int = 3,
                   thickness: int = 2, min_visibility: float = 0.5) -> np.ndarray:
    """Points and skeleton edges of each instance (points with ``v < min_visibility`` hidden)."""
    import cv2

    img = _rgb(image).copy()
    for n, inst in enumerate(keypoints.data):
        color = color_for(n)
        vis = inst[:, 2] >= min_visibility
        pts = np.round(inst[:, :2]).astype(int)
        for a, b in keypoints.skeleton:
            if vis[a] and vis[b]:
                cv2.line(img, tuple(pts[a]), tuple(pts[b]), color, thickness, cv2.LINE_AA)
        for k in np.flatnonzero(vis):
            cv2.circle(img, tuple(pts[k]), radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(img, tuple(pts[k]), radius, color, 1, cv2.LINE_AA)
    return img


def overlay_semantic(image: np.ndarray | None, semantic: SemanticMap, *, alpha: float = 0.5,
                     legend: bool = True, font_size: int = 12) -> np.ndarray:
    """The colour-coded map blended over ``image`` (or alone), with a legend of the classes
    present on the right."""
    colored = semantic.to_rgb()
    if image is None:
        out = colored
    else:
        img = _rgb(image)
        if img.shape[:2] != semantic.size:
            raise ValueError(f"image is {img.shape[:2]}, map is {semantic.size}")
        blend = img.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha
        valid = semantic.valid()[..., None]
        out = np.where(valid, np.round(blend), img).astype(np.uint8)
    if not legend:
        return out
    present = sorted(semantic.class_areas())
    names = semantic.class_names
    entries = [(names[c] if names is not None and c < len(names) else str(c), c)
               for c in present]
    return np.concatenate([out, _legend(entries, semantic.colors(), out.shape[0], font_size)],
                          axis=1)


def _legend(entries, colors, height: int, font_size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    row = font_size + 6
    width = 24 + max([int(_font(font_size).getlength(n)) for n, _ in entries] + [40]) + 8
    pil = Image.new("RGB", (width, max(height, row * len(entries) + 8)), (255, 255, 255))
    draw = ImageDraw.Draw(pil)
    for k, (name, c) in enumerate(entries):
        y = 4 + k * row
        draw.rectangle((4, y, 4 + font_size, y + font_size), fill=tuple(int(v) for v in colors[c]),
                       outline=(0, 0, 0))
        draw.text((10 + font_size, y), name, fill=(0, 0, 0), font=_font(font_size))
    arr = np.asarray(pil)
    return arr[:height] if arr.shape[0] > height else arr


def checkerboard(height: int, width: int, square: int = 16) -> np.ndarray:
    """Light/dark grey checkerboard, ``(H, W, 3)`` uint8."""
    yy, xx = np.mgrid[:height, :width]
    cells = ((yy // square) + (xx // square)) % 2
    return np.where(cells[..., None] == 0, 204, 153).astype(np.uint8).repeat(3, axis=2)


def alpha_on_checkerboard(alpha: Alpha | np.ndarray, foreground: np.ndarray | None = None,
                          square: int = 16) -> np.ndarray:
    """Composite ``foreground`` (white if ``None``) over a checkerboard with ``alpha``."""
    a = alpha.alpha if isinstance(alpha, Alpha) else Alpha(alpha).alpha
    h, w = a.shape
    fg = np.full((h, w, 3), 255, np.uint8) if foreground is None else _rgb(foreground)
    bg = checkerboard(h, w, square).astype(np.float32)
    out = fg.astype(np.float32) * a[..., None] + bg * (1 - a[..., None])
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def side_by_side(panels: Sequence[np.ndarray], titles: Sequence[str] | None = None, *,
                 gap: int = 4, font_size: int = 14) -> np.ndarray:
    """Panels in a row (each padded to the tallest), with optional titles above."""
    from PIL import Image, ImageDraw

    imgs = [_rgb(p) for p in panels]
    if not imgs:
        raise ValueError("side_by_side needs at least one panel")
    h = max(i.shape[0] for i in imgs)
    title_h = font_size + 8 if titles else 0
    width = sum(i.shape[1] for i in imgs) + gap * (len(imgs) - 1)
    canvas = np.full((h + title_h, width, 3), 255, np.uint8)
    x = 0
    for i in imgs:
        canvas[title_h:title_h + i.shape[0], x:x + i.shape[1]] = i
        x += i.shape[1] + gap
    if titles:
        pil = Image.fromarray(canvas)
        draw = ImageDraw.Draw(pil)
        x = 0
        for i, t in zip(imgs, titles, strict=True):
            draw.text((x + 4, 3), t, fill=(0, 0, 0), font=_font(font_size))
            x += i.shape[1] + gap
        canvas = np.asarray(pil)
    return canvas


def save(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a rendering atomically (format from the extension)."""
    from masklab.io.images import write_image

    return write_image(path, image)
