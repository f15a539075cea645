"""Exporting: ``export`` (a stored model as ONNX or as a TensorFlow SavedModel, recorded in its card)."""

from __future__ import annotations

from pathlib import Path

from pneumo.cli.common import UserError, require_model, require_writable_folder


def run_export(args) -> int:
    """Write a stored model (and its subtype model) in another runtime's format and record it in the card."""
    from pneumo.inference import export

    if args.format not in export.FORMATS:
        raise UserError(f"Unknown format {args.format!r}; choose from {list(export.FORMATS)}.")
    on_file = require_model(args.model)
    out = Path(args.out) if args.out else export.default_folder(on_file.path, args.format)
    require_writable_folder(out, "--out")
    if args.format == "saved-model":
        try:
            export.check_saved_model_folder(out)
        except ValueError as err:
            raise UserError(f"--out {err}") from err

    from pneumo import store

    loaded = store.load(args.model)
    subtype = store.load_subtype(loaded)
    write = export.write_onnx if args.format == "onnx" else export.write_saved_model
    section = write(loaded, subtype, out)
    card = export.record_export(loaded, args.format, section)
    written = [section["file"], *([section["subtype"]["file"]] if "subtype" in section else [])] \
        if args.format == "onnx" else [f"SavedModel (signature {', '.join(section['signatures'])})"]
    largest = max([*section["max_abs_difference"].values(),
                   *section.get("subtype", {}).get("max_abs_difference", {}).values()])
    print(f"export: wrote {', '.join(written)} of model {loaded.name!r} to {out} "
          f"(largest difference from Keras on the check films: {largest:.1e})")
    print(f"export: recorded in {card} (section {export.CARD_KEYS[args.format]!r})")
    return 0
