"""A real PACS for the tests: Debian's Orthanc on loopback, with a temporary configuration.

:func:`running_orthanc` starts ``/usr/sbin/Orthanc`` with its storage in a temporary folder,
its DICOM and HTTP ports free ones, remote access off, no authentication, and the modalities
it may send to; it stops it afterwards. :class:`OrthancREST` is the few REST calls the tests
make (upload an instance, send it to a modality, list a study's instances, download one).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ORTHANC = "/usr/sbin/Orthanc"


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class OrthancREST:
    """Orthanc's REST API at ``url``."""

    url: str
    ae_title: str
    dicom_port: int

    def call(self, method: str, path: str, body: bytes | dict | None = None, timeout: float = 30) -> bytes:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()

    def json(self, method: str, path: str, body: bytes | dict | None = None, timeout: float = 30):
        return json.loads(self.call(method, path, body, timeout) or b"null")

    def upload(self, dicom: bytes) -> dict:
        """Store one DICOM file; returns Orthanc's answer (ID, ParentStudy, ...)."""
        return self.json("POST", "/instances", dicom)

    def send(self, modality: str, instance_id: str) -> dict:
        """Ask Orthanc to C-STORE an instance to a registered modality, waiting for the answer."""
        return self.json("POST", f"/modalities/{modality}/store", {"Resources": [instance_id], "Synchronous": True})

    def study_instances(self, study_id: str) -> list[dict]:
        return self.json("GET", f"/studies/{study_id}/instances")

    def instance_file(self, instance_id: str) -> bytes:
        return self.call("GET", f"/instances/{instance_id}/file")


@contextlib.contextmanager
def running_orthanc(workdir: Path, modalities: dict[str, tuple[str, str, int]],
                    ae_title: str = "ORTHANC") -> Iterator[OrthancREST]:
    """Orthanc on loopback for the duration of the block.

    Args:
        workdir: an empty folder for its configuration, storage and index.
        modalities: name -> (AE title, host, port) of the peers it may send to.
        ae_title: Orthanc's own AE title.
    """
    if shutil.which(ORTHANC) is None and not Path(ORTHANC).exists():
        raise RuntimeError(f"Orthanc is not installed at {ORTHANC} (make debian-tools installs it)")
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "pneumo-tests", "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"), "HttpPort": http_port, "DicomPort": dicom_port,
        "DicomAet": ae_title, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "HttpServerEnabled": True, "DicomCheckCalledAet": False, "Plugins": [],
        "DicomModalities": {name: list(peer) for name, peer in modalities.items()},
        "StableAge": 1, "LogExportedResources": False,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "orthanc.json"
    config_file.write_text(json.dumps(config))
    log = (workdir / "orthanc.log").open("wb")
    process = subprocess.Popen([ORTHANC, str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    rest = OrthancREST(f"http://127.0.0.1:{http_port}", ae_title, dicom_port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                rest.json("GET", "/system", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Orthanc did not start: " + (workdir / "orthanc.log").read_text()[-2000:])
                time.sleep(0.2)
        yield rest
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
