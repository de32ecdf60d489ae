"""What every request's work needs: the calling device, and the process-wide services."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

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
    _demographics_lock: threading.Lock = field(default_factory=threading.Lock)

    def estimate(self, crop: FaceCrop | None) -> Demographics | None:
        if crop is None or self.demographics is None:
            return None
        chips = prepare(crop)  # the untrusted JPEG is decoded outside the shared lock
        with self._demographics_lock:  # onnxruntime sessions are shared by request threads
            return self.demographics.infer(chips)
