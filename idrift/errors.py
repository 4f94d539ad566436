"""Errors that reach users. Each one names the input at fault and says what to do."""


class IdriftError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in idrift."""


class WeightsError(IdriftError):
    """A weight folder or file is missing or malformed. The message names it and the option that sets it."""


class ImageError(IdriftError):
    """An image file cannot be used (unreadable, corrupt, empty, wrong mode or size)."""


class FaceError(IdriftError):
    """A face requirement is not met (no face, several faces)."""


class NoFaceError(FaceError):
    pass


class MultipleFacesError(FaceError):
    pass


class ModelFolderError(IdriftError):
    """A face-model folder is missing or incomplete (never downloaded by idrift)."""


class BaselineError(IdriftError):
    """A baseline JSON file is missing, malformed or of an old schema."""


class NonFiniteError(IdriftError):
    """A model produced NaN or inf; the sample is recorded as failed and the run goes on."""
