"""Errors a user can act on. Each message names the file, key or value and says what to do."""


class TrainlabError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class ConfigError(TrainlabError, ValueError):
    """A recipe or override that cannot be used."""


class DataError(TrainlabError, ValueError):
    """A dataset that is missing, malformed or unreadable."""


class CheckpointError(TrainlabError, ValueError):
    """A checkpoint that cannot be read, written or matched to its model."""


class DeviceError(TrainlabError, RuntimeError):
    """A requested device that this machine or torch build cannot provide."""


class NonFiniteLossError(TrainlabError, RuntimeError):
    """Training produced a NaN or Inf loss."""


class DistributedError(TrainlabError, RuntimeError):
    """Another process of a distributed run stopped or cannot be reached."""
