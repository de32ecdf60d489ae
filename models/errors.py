"""Errors raised while obtaining or checking model files. Each names the model and its source."""


class ModelError(Exception):
    """Base class for every model-store failure."""


class ModelMissingError(ModelError):
    """A model file is not on disk (it was never fetched, or was deleted)."""


class ModelCorruptError(ModelError):
    """A model file is on disk but its sha256 differs from the manifest."""


class ModelFetchError(ModelError):
    """A model's package could not be downloaded or did not contain the model."""


class UnknownModelError(ModelError, KeyError):
    """A model name that the manifest does not list."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


class ModelConversionError(ModelError):
    """A source model could not be read or converted (unexpected bytes or architecture)."""
