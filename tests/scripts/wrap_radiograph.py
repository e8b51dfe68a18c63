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
import sys

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR = "1.2.840.10008.5.1.4.1.1.1"


def wrap(out, image, sets):
    px = np.asarray(Image.open(image).convert("L"), dtype=np.uint8)
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1443.2"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CR
    ds.SOPInstanceUID = sop
    ds.StudyDate = "20261207"
    ds.StudyTime = "070000"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.Manufacturer = "radroute-e2e"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "E2E^RADIOGRAPH"
    ds.PatientID = "E2E002"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
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
    return sop


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
