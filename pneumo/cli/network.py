"""The imaging network: ``dicom-listener`` receives films over DICOM and sends results back."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from pneumo.cli.common import UserError, require_model, require_writable_folder

STATUS_EVERY_S = 10.0
"""How often the running listener prints its queue's counts (when they changed)."""


def run_dicom_listener(args) -> int:
    """Serve C-STORE and C-ECHO until interrupted; each film's SR and overlay go to ``--forward``."""
    from pneumo import store
    from pneumo.inference.predict import Classifier
    from pneumo.pacs.forward import Destination, Forwarder
    from pneumo.pacs.listener import Listener

    if len(args.ae_title) > 16 or not args.ae_title.strip():
        raise UserError("--ae-title must be 1 to 16 characters.")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be a number from 1 to 65535, got {args.port}.")
    try:
        destination = Destination.parse(args.forward)
    except ValueError as err:
        raise UserError(str(err)) from None
    require_writable_folder(args.work_dir, "--work-dir")
    require_model(args.model, args.site)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    loaded = store.load(args.model)
    classifier = Classifier(loaded, site=args.site or None)
    forwarder = Forwarder(classifier, destination, calling_ae=args.ae_title)
    listener = Listener(classifier, args.work_dir, args.ae_title, args.port, forwarder,
                        allowed=args.allow or None, host=args.host, keep_overlays=args.keep_overlays,
                        keep_accession=args.keep_accession,
                        retry_delay=max(0.0, args.retry_delay))
    try:
        listener.start()
    except OSError as err:
        raise UserError(f"The listener cannot start on {args.host}:{args.port} ({err.strerror or err}).") from None
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"dicom-listener: {args.ae_title} on {args.host}:{listener.port}, model {loaded.name}, results to "
          f"{destination.ae_title} at {destination.host}:{destination.port}; worklist in {args.work_dir} "
          f"({'with' if args.keep_overlays else 'without'} images); Ctrl-C stops", flush=True)
    started, shown = time.monotonic(), None
    while not stopped.wait(STATUS_EVERY_S):
        counts = listener.queue.counts()
        if counts != shown:
            print("dicom-listener: " + ", ".join(f"{n} {status}" for status, n in counts.items()), flush=True)
            shown = counts
    counts = listener.queue.counts()
    listener.stop()
    print(f"dicom-listener: stopped after {time.monotonic() - started:.0f} s; "
          + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; the queue is kept in {args.work_dir}", flush=True)
    return 0
