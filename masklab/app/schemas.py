"""The request bodies of the app's HTTP API (pydantic)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from pydantic import BaseModel, Field

# --- request bodies ------------------------------------------------------------------------
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what a database integer holds
Id = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
class ClassIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    color: str | None = None
    id: Int64 | None = None


class AttributeIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = "text"
    values: list[str] | None = None


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    classes: list[ClassIn | str] = Field(default_factory=list)
    attributes: list[AttributeIn] = Field(default_factory=list)


class AttributesIn(BaseModel):
    attributes: list[AttributeIn]


class ClassesIn(BaseModel):
    classes: list[ClassIn | str]


class FolderIn(BaseModel):
    folder: str
    recursive: bool = True


class CocoIn(BaseModel):
    coco: str
    images_dir: str | None = None
    format: str = "coco"  # or labelme, cvat, labelstudio, voc, cityscapes, yolo, ...


class Rle(BaseModel):
    size: list[int]
    counts: str | list[int]


class AnnotationIn(BaseModel):
    class_id: Int64
    mask: Rle
    source: str = "hand"
    score: float | None = None
    version: Int64 | None = None
    track_id: Int64 | None = None
    attributes: dict[str, Any] | None = None
    proposal: bool = False  # a model's suggestion, to be reviewed


class AnnotationPatch(BaseModel):
    version: Int64 | None = None
    class_id: Int64 | None = None
    mask: Rle | None = None
    visible: bool | None = None
    z: Int64 | None = None
    source: str | None = None
    attributes: dict[str, Any] | None = None
    proposal: bool | None = None  # false: accept a proposal


class VersionIn(BaseModel):
    version: Int64 | None = None


class StatusIn(BaseModel):
    status: str
    comment: str = ""


class AssignIn(BaseModel):
    user_id: Int64 | None = None


class ScribbleIn(BaseModel):
    points: list[list[float]]
    width: float = 5.0
    positive: bool = True


class SegmentIn(BaseModel):
    points: list[list[float]] = Field(default_factory=list)
    labels: list[int] = Field(default_factory=list)
    box: list[float] | None = None
    mask: Rle | None = None  # refine: the current mask as a prompt
    scribbles: list[ScribbleIn] = Field(default_factory=list)
    multimask: bool = False


class TextIn(BaseModel):
    text: str = ""  # "cat, dog"; empty: the project's classes
    threshold: float | None = None
    limit: int = Field(default=50, ge=1, le=500)


class StrokeIn(BaseModel):
    points: list[list[float]]
    width: float = 10.0
    kind: str = "unknown"


class MatteIn(BaseModel):
    band: int = 8
    strokes: list[StrokeIn] = Field(default_factory=list)


class TrackIn(BaseModel):
    direction: str = "forward"
    frames: int = Field(default=50, ge=1, le=5000)


class ExportIn(BaseModel):
    format: str = "coco"
    proposals: bool = False  # include proposals not yet accepted


class LoginIn(BaseModel):
    name: str
    password: str


class UserIn(BaseModel):
    name: str
    password: str
    role: str



class JobIn(BaseModel):
    kind: str  # import | import-coco | export | prelabel | track
    params: dict[str, Any] = Field(default_factory=dict)
    # prelabel: the images, as the list's filter (status, assignee, annotated, proposals, q,
    # frames); absent: every image of the project
    filter: dict[str, Any] | None = None


class ReviewIn(BaseModel):
    action: str  # accept | reject
    class_id: Int64 | None = None
    min_score: float | None = None
    max_score: float | None = None
    image_id: Int64 | None = None
    annotation_ids: list[Int64] | None = None
