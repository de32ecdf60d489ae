"""What every request's work needs: the calling device, and the process-wide services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from cloud_api.services.demographics import DemographicsEstimator, prepare
from cloud_api.services.recognizer import Recognizer
from cloud_api.settings import CloudSettings
from contract import Demographics, FaceCrop


@dataclass(frozen=True)
class Caller:
    """An authenticated device: it only ever sees its own store's data."""

    device_id: int
    device_kind: str
    store_id: int
    region_id: int


@dataclass
class Services:
    settings: CloudSettings
    sessions: sessionmaker[Session]
    recognizer: Recognizer
    demographics: DemographicsEstimator | None

    def estimate(self, crop: FaceCrop | None) -> Demographics | None:
        if crop is None or self.demographics is None:
            return None
        # the untrusted JPEG is decoded first, checked against its header; no lock: request
        # threads run the shared onnxruntime sessions at the same time (Run is thread-safe)
        return self.demographics.infer(prepare(crop))
