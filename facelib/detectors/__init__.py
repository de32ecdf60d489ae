"""Face detector backends behind one interface, chosen by `DetectorSettings.type`."""

from facelib.detectors.base import FaceDetector
from facelib.detectors.factory import create_detector

__all__ = ["FaceDetector", "create_detector"]
