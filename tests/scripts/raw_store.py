#!/usr/bin/env python3
"""Send the bytes of a file's data set, verbatim, in one C-STORE (pynetdicom, low level).

Used by radroute's end-to-end tests for files that dcmtk's storescu refuses to read or cannot
send in their own transfer syntax (truncated, no file meta, JPEG process 14 .57 ...), so that
radroute's own handling of the bytes is what is tested.

  raw_store.py HOST PORT CALLED_AE FILE [--ts UID] [--sop-class UID] [--sop-instance UID]

The data set starts after the Part-10 file meta (group 0002, found by scanning its explicit VR
little endian elements) or at byte 0 when the file has no "DICM" preamble. Transfer syntax, SOP
class and SOP instance default to the file meta's; options override (needed when it lacks them).
Prints one line: "STATUS 0xXXXX", or "ASSOC_REJECTED", "NO_CONTEXT", "NO_RESPONSE"; exit 0 when
a status came back, 3 otherwise.
"""
import argparse
import io
import struct
import sys
import time

from pynetdicom import AE
from pynetdicom.dimse_primitives import C_STORE


def split_part10(raw):
    """-> (meta dict tag->str, offset of the data set)"""
    meta = {}
    if len(raw) < 132 or raw[128:132] != b"DICM":
        return meta, 0
    pos = 132
    while pos + 8 <= len(raw):
        group, elem = struct.unpack_from("<HH", raw, pos)
        if group != 0x0002:
            break
        vr = raw[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            (length,) = struct.unpack_from("<I", raw, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", raw, pos + 6)
            start = pos + 8
        value = raw[start:start + length]
        if vr == b"UI":
            meta[elem] = value.rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    return meta, pos


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("called_ae")
    p.add_argument("file")
    p.add_argument("--ts")
    p.add_argument("--sop-class")
    p.add_argument("--sop-instance")
    p.add_argument("--calling-ae", default="RAWSTORE")
    p.add_argument("--timeout", type=float, default=60)
    a = p.parse_args()
    raw = open(a.file, "rb").read()
    meta, offset = split_part10(raw)
    ts = a.ts or meta.get(0x0010)
    sop_class = a.sop_class or meta.get(0x0002)
    sop_instance = a.sop_instance or meta.get(0x0003)
    if not (ts and sop_class and sop_instance):
        print("USAGE: need --ts/--sop-class/--sop-instance for %s" % a.file)
        return 2
    data = raw[offset:]
    ae = AE(ae_title=a.calling_ae)
    ae.acse_timeout = 10
    ae.dimse_timeout = a.timeout
    ae.network_timeout = 30
    ae.add_requested_context(sop_class, [ts])
    assoc = ae.associate(a.host, a.port, ae_title=a.called_ae)
    if not assoc.is_established:
        print("ASSOC_REJECTED")
        return 3
    ctx = [c for c in assoc.accepted_contexts
           if c.abstract_syntax == sop_class and c.transfer_syntax[0] == ts]
    if not ctx:
        print("NO_CONTEXT")
        assoc.release()
        return 3
    req = C_STORE()
    req.MessageID = 1
    req.AffectedSOPClassUID = sop_class
    req.AffectedSOPInstanceUID = sop_instance
    req.Priority = 2
    req.DataSet = io.BytesIO(data)
    # Pause the association's reactor as pynetdicom's own send_c_* do, or it may take the
    # response off the queue first (and log "Received unexpected C-STORE service message").
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    assoc.dimse.send_msg(req, ctx[0].context_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    assoc._reactor_checkpoint.set()
    if rsp is None or getattr(rsp, "Status", None) is None:
        print("NO_RESPONSE")
        assoc.abort()
        return 3
    print("STATUS 0x%04X" % rsp.Status)
    assoc.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
