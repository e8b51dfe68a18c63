"""Writes seed inputs for the fuzz targets into fuzz/corpus-raw/<target>/ (not committed).

Dimse targets: command sets and P-DATA fragments of C-ECHO-RQ and C-STORE-RQ, encoded by
pynetdicom. Data-set targets: the small files of the shared DICOM samples (at most 40 KB), each
behind the transfer-syntax selector byte the targets read (see radroute_fuzz_targets). Run with
the workspace's Python: `.venv/bin/python fuzz/seeds.py [SAMPLES_DIR]`.
"""
import os
import struct
import sys
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import dimse_primitives
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dsutils import encode

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "corpus-raw"
SAMPLES = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent.parent / "shared/data/dicom-samples"
# The order of radroute_fuzz_targets::SYNTAXES.
SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70"]


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def messages():
    echo = dimse_primitives.C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    store = dimse_primitives.C_STORE()
    store.MessageID = 7
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    store.AffectedSOPInstanceUID = "1.2.3.4.5"
    store.Priority = 2
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.PatientName = "DOE^JOHN"
    store.DataSet = __import__("io").BytesIO(encode(ds, True, True))
    for name, cls, prim in [("echo", C_ECHO_RQ, echo), ("store", C_STORE_RQ, store)]:
        msg = cls()
        msg.primitive_to_message(prim)
        yield name, msg


def main():
    for name, msg in messages():
        write("command_decode", name, encode(msg.command_set, True, True))
        for max_pdu in (0, 64):
            stream = b""
            for pdu in msg.encode_msg(1, max_pdu):
                for ctx, value in pdu.presentation_data_value_list:
                    header, fragment = value[0], value[1:]
                    stream += bytes([(ctx << 2) | (header & 3)]) + struct.pack("<H", len(fragment)) + fragment
            write("pdata_reassembly", f"{name}-{max_pdu}", stream)
    for f in sorted((SAMPLES / "good").glob("*.dcm")):
        data = f.read_bytes()
        if len(data) > 40_000:
            continue
        from pydicom import dcmread
        ts = str(dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        sel = bytes([SYNTAXES.index(ts)]) if ts in SYNTAXES else b"\x01"
        offset = 132 + 12 + struct.unpack("<I", data[140:144])[0]
        write("preparse_walk", f.stem, sel + data[offset:])
        write("splice_point", f.stem, sel + data)
        write("decode_entry", f.stem, data)


if __name__ == "__main__":
    main()
