#!/usr/bin/env python3
"""Wrap real radiographs (PNG/JPEG) as CR instances with a chosen Body Part Examined.

  wrap_radiograph.py --batch SPEC.jsonl
      one {"out": PATH, "image": PATH, "set": {"BodyPartExamined": "CHEST", ...}} a line;
      "set" adds or replaces any keyword of the standard dictionary; a keyword set to null is
      removed (e.g. {"BodyPartExamined": null} for an absent attribute).

Writes Explicit VR Little Endian, MONOCHROME2, 8 bits stored in 8 allocated, the image's own
size (grayscale; colour images are converted). Prints one SOP Instance UID a line, in order.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_instance import header  # noqa: E402  (the shared test header)

CR = "1.2.840.10008.5.1.4.1.1.1"


def wrap(out, image, sets):
    px = np.asarray(Image.open(image).convert("L"), dtype=np.uint8)
    ds = header(
        CR, "CR", patient_name="E2E^RADIOGRAPH", patient_id="E2E002",
        study_date="20261207", study_time="070000",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BodyPartExamined = ""
    ds.ViewPosition = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = px.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for k, v in sets.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.PixelData = px.tobytes()
    ds.save_as(out, enforce_file_format=True)
    return ds.SOPInstanceUID


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--batch":
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2]) as f:
        for line in f:
            if line.strip():
                spec = json.loads(line)
                print(wrap(spec["out"], spec["image"], spec.get("set", {})), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
