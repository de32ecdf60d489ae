"""Errors the face library raises. Model-file errors come from `models.errors`."""


class FaceLibError(Exception):
    """Base class for face-library failures."""


class InvalidImageError(FaceLibError, ValueError):
    """An input image the library cannot process; the message says what is wrong with it."""
