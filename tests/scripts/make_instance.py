#!/usr/bin/env python3
"""Write one small uncompressed (Explicit VR LE) image instance for routing / classification tests.

  make_instance.py OUT --modality CR --pattern hgrad|vgrad|flat --rows 64 --cols 64
                   [--study UID] [--sop UID] [--set Keyword=value ...]
  make_instance.py --batch SPEC.jsonl    # one {"out", "modality", "pattern", "study", "set": {..}} a line

Patterns (12-bit MONOCHROME2): `hgrad` dark left to bright right (the tiny test model labels it
HAND), `vgrad` dark top to bright bottom, `flat` one value. `--set` adds or replaces any keyword
of the standard dictionary (e.g. BodyPartExamined=CHEST, InstitutionName=ST ELSEWHERE).
Prints the SOP Instance UID.
"""
import argparse
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOP = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        import json

        with open(sys.argv[2]) as f:
            for line in f:
                if line.strip():
                    spec = json.loads(line)
                    write(
                        spec["out"], spec.get("modality", "CR"), spec.get("pattern", "hgrad"),
                        64, 64, spec.get("study"), None, list(spec.get("set", {}).items()),
                    )
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--modality", default="CR")
    p.add_argument("--pattern", default="hgrad")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--cols", type=int, default=64)
    p.add_argument("--study")
    p.add_argument("--sop")
    p.add_argument("--set", action="append", default=[])
    a = p.parse_args()
    sets = [kv.split("=", 1) for kv in a.set]
    write(a.out, a.modality, a.pattern, a.rows, a.cols, a.study, a.sop, sets)
    return 0


def header(sop_class, modality, sop=None, study=None, patient_name="E2E^TEST",
           patient_id="E2E001", study_date="20261128", study_time="024500"):
    """File meta and the attributes every test instance shares (patient, study, series,
    equipment), Explicit VR Little Endian. Also used by wrap_radiograph.py."""
    sop = sop or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1443.2"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "radroute-e2e"
    ds.ReferringPhysicianName = ""
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    return ds


def write(out, modality, pattern, r, c, study, sop, sets):
    if pattern == "hgrad":
        px = np.tile(np.linspace(0, 4095, c), (r, 1))
    elif pattern == "vgrad":
        px = np.tile(np.linspace(0, 4095, r)[:, None], (1, c))
    else:
        px = np.full((r, c), 2000.0)
    px = px.astype(np.uint16)

    ds = header(SOP[modality], modality, sop, study)
    if modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = ""
        ds.AcquisitionNumber = 1
        ds.ImagePositionPatient = [0, 0, 0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = generate_uid()
        ds.PositionReferenceIndicator = ""
        ds.SliceThickness = 1
        ds.PixelSpacing = [1, 1]
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.BodyPartExamined = ""
        ds.ViewPosition = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = r
    ds.Columns = c
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for k, v in sets:
        setattr(ds, k, v)
    ds.PixelData = px.tobytes()
    ds.save_as(out, enforce_file_format=True)
    print(ds.SOPInstanceUID, flush=True)


if __name__ == "__main__":
    sys.exit(main())
