"""Plain-text tables of evaluation results (what the CLI prints)."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Left-aligned columns; floats with 4 decimals, None as ``-``."""

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def coco_text(result) -> str:
    stats = table(["metric", "value"], list(zip(result.stat_names, map(float, result.stats),
                                                strict=True)))
    per = result.per_category()
    cats = table(["category", "AP", "AP50", "AP75"],
                 [[r["name"], r["AP"], r["AP50"], r["AP75"]] for r in per.values()])
    simple = table(["at IoU 0.5", "value"], [[k, v] for k, v in result.simple.items()])
    return f"{stats}\n\n{simple}\n\n{cats}"


def semantic_text(result) -> str:
    d = result.to_dict()
    head = table(["metric", "value"], [[k, d[k]] for k in ("mIoU", "mDice", "pixel_acc",
                                                            "mean_acc", "fwIoU")])
    per = table(["class", "IoU", "Dice", "Acc"],
                [[k, v["IoU"], v["Dice"], v["Acc"]] for k, v in d["per_class"].items()])
    return f"{head}\n\n{per}"


def panoptic_text(result, names: dict[int, str] | None = None) -> str:
    rows = [[part, r["pq"], r["sq"], r["rq"], r["n"]] for part, r in
            (("All", result.all), ("Things", result.things), ("Stuff", result.stuff))]
    head = table(["", "PQ", "SQ", "RQ", "N"], rows)
    per = table(["class", "PQ", "SQ", "RQ"],
                [[(names or {}).get(c, str(c)), v["pq"], v["sq"], v["rq"]]
                 for c, v in result.per_class.items()])
    return f"{head}\n\n{per}"


def davis_text(result) -> str:
    head = table(list(result.global_), [list(result.global_.values())])
    per = table(["object", "J-Mean", "F-Mean"],
                [[k, result.j_per_object[k], result.f_per_object[k]]
                 for k in result.j_per_object])
    return f"{head}\n\n{per}"


def matting_text(result) -> str:
    rows = [[k, v["SAD"], v["MSE"], v["Grad"], v["Conn"]] for k, v in result.per_image.items()]
    m = result.mean
    rows.append(["mean", m["SAD"], m["MSE"], m["Grad"], m["Conn"]])
    return table(["image", "SAD", "MSE", "Grad", "Conn"], rows)
