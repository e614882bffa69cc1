"""Errors that a user can act on: the CLI prints their message without a traceback."""


class FacetvizError(RuntimeError):
    """A problem with the input (config, files, data) that the message explains how to fix."""


class ConfigError(FacetvizError):
    """A config value that is invalid; the message names the key."""


class DiskFullError(FacetvizError):
    """An output could not be written for lack of space; nothing that looks complete was left."""
