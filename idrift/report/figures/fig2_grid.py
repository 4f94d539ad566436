"""Figure 2: reference face, then FLUX.1-schnell 4 steps and FLUX.1-dev 28 steps for each evaluation prompt,
one row per identity (paper Figure 2), with the run's measured latencies in the caption band.

Drawn with PIL at a known pixel size (`grid_size`): panels of PANEL px under a band of column labels, the
caption band below them.
"""

from __future__ import annotations

from pathlib import Path

from idrift.claims import DEV_28, SCHNELL_4
from idrift.report.captions import caption, profile_caveat, setting
from idrift.report.data import SWAP_CLAIMS, MissingData, RunData, hint
from idrift.stats import CONFIDENCE

GRID_FILE = "figure2_grid.png"
PANEL = 160  # px per image in the grid
LABEL_H = 34  # px of the column-label band
PAD = 4  # px between panels
CAPTION_LINES, LINE_H = 6, 15  # the caption band: lines of LINE_H px
GRID_MAX_IDENTITIES = 3  # the paper shows 3 identities
BACKGROUND = (255, 255, 255)
COLUMN_ORDER = (SCHNELL_4, DEV_28)  # the paper's: schnell-4 for every prompt, then dev-28


def grid_size(rows: int, cols: int) -> tuple[int, int]:
    """Pixel (width, height) of an image grid of rows x cols panels, caption band included."""
    return cols * PANEL + (cols + 1) * PAD, LABEL_H + rows * PANEL + (rows + 1) * PAD + CAPTION_LINES * LINE_H + PAD


def _latency(data: RunData, arm: str) -> str:
    figure = data.interval("latency", f"latency_s[{arm}]")
    if figure is None:
        return "not measured"
    ci = "" if figure.ci is None else f", {CONFIDENCE:.0%} CI {figure.ci[0]:.3g}-{figure.ci[1]:.3g}"
    return f"{figure.value:.3g} s (median of {figure.n} rounds{ci})"


def grid_caption(data: RunData, claim_id: str, n_identities: int) -> str:
    latency = (f"Measured latency per image: dev-28 {_latency(data, DEV_28.name)}, schnell-4 "
               f"{_latency(data, SCHNELL_4.name)}, dev-4 {_latency(data, 'dev-4')} (paper: 10.29 s and 1.73 s)")
    return caption(
        "Figure 2 (paper Figure 2): column 1 the reference face; then FLUX.1-schnell 4 steps for each prompt; "
        "then FLUX.1-dev 28 steps for the same prompts",
        setting(data, claim_id, f"{n_identities} identities shown"),
        latency, profile_caveat(data.profile, ("id_sim", "latency")))


def _wrap(draw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    lines.append(line)
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES - 1] + [lines[CAPTION_LINES - 1] + " ..."]
    return lines


def _panel(data: RunData, store, keys, references, identity, prompt, arm, font):
    from PIL import Image, ImageDraw

    if arm is None:
        panel = references.get(identity)
    else:
        key = keys.get((arm.backbone, arm.steps, identity, prompt))
        record = store.get(key) if key and store is not None else None
        panel = record.load_image() if record is not None and record.ok else None
    if panel is None:
        panel = Image.new("RGB", (PANEL, PANEL), (200, 200, 200))
        ImageDraw.Draw(panel).text((8, PANEL // 2), "not available", fill=(0, 0, 0), font=font)
    return panel.convert("RGB").resize((PANEL, PANEL), Image.Resampling.LANCZOS)


def build(data: RunData):
    """(PIL image, caption, column labels)."""
    from PIL import Image, ImageDraw, ImageFont

    claim_id = next((c for c in SWAP_CLAIMS if data.has(c)), None)
    if claim_id is None:
        raise MissingData(hint(data.run, "table1_backbone_swap"))
    records = data.records(claim_id)
    keys = dict(zip(((r["spec"]["backbone"], r["spec"]["steps"], r["spec"]["identity"], r["spec"]["prompt_id"])
                     for r in records), data.run.doc["claims"][claim_id]["spec_keys"]))
    identities = list(dict.fromkeys(r["spec"]["identity"] for r in records))[:GRID_MAX_IDENTITIES]
    prompts = list(dict.fromkeys(r["spec"]["prompt_id"] for r in records))
    columns = [("reference", None, None)] + [(f"{p}\n{arm.name}", p, arm) for arm in COLUMN_ORDER for p in prompts]
    references = reference_images(data.run)
    width, height = grid_size(len(identities), len(columns))
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    store = data.run.open_store()
    try:
        for c, (label, prompt, arm) in enumerate(columns):
            x = PAD + c * (PANEL + PAD)
            draw.multiline_text((x + 2, 2), label, fill=(0, 0, 0), font=font, spacing=2)
            for r, identity in enumerate(identities):
                y = LABEL_H + PAD + r * (PANEL + PAD)
                canvas.paste(_panel(data, store, keys, references, identity, prompt, arm, font), (x, y))
                if c == 0:
                    draw.rectangle((x, y + PANEL - 16, x + PANEL - 1, y + PANEL - 1), fill=(0, 0, 0))
                    draw.text((x + 3, y + PANEL - 15), identity, fill=(255, 255, 255), font=font)
    finally:
        if store is not None:
            store.close()
    text = grid_caption(data, claim_id, len(identities))
    top = LABEL_H + PAD + len(identities) * (PANEL + PAD)
    for i, line in enumerate(_wrap(draw, text, font, width - 2 * PAD)):
        draw.text((PAD, top + i * LINE_H), line, fill=(0, 0, 0), font=font)
    return canvas, text, [label for label, _, _ in columns]


def draw(data: RunData, out: Path, name: str = GRID_FILE) -> None:
    from PIL import PngImagePlugin

    canvas, text, _ = build(data)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "idrift")
    info.add_text("Description", data.provenance_text())
    info.add_text("Comment", text)
    canvas.save(out / name, format="PNG", pnginfo=info)


def reference_images(run) -> dict:
    """identity -> PIL image of its reference photo, from the run's identity manifest (none on synthetic)."""
    from PIL import Image

    manifest_path = run.doc["options"].get("identities")
    if not manifest_path or not Path(manifest_path).is_file():
        return {}
    from idrift.data.identities import load_manifest

    manifest = load_manifest(manifest_path, verify=False)
    out = {}
    for entry in manifest.entries:
        path = manifest.image_file(entry)
        if path.is_file():
            with Image.open(path) as image:
                out[entry.identity_id] = image.convert("RGB")
    return out
