#!/usr/bin/env python3
"""Open a Verification association and hold it until a line arrives on stdin (or stdin closes),
then release it. Prints "ESTABLISHED" (flushed) once the association is up, or "REJECTED".

  hold_assoc.py HOST PORT CALLED_AE
"""
import sys

from pynetdicom import AE

VERIFICATION = "1.2.840.10008.1.1"


def main():
    host, port, called = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ae = AE(ae_title="HOLDER")
    ae.acse_timeout = 10
    ae.network_timeout = None
    ae.add_requested_context(VERIFICATION)
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        print("REJECTED", flush=True)
        return 3
    print("ESTABLISHED", flush=True)
    sys.stdin.readline()
    if assoc.is_established:
        assoc.release()
    print("RELEASED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
