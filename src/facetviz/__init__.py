"""facetviz: multifaceted feature visualization (Nguyen, Yosinski & Clune 2016)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("facetviz")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.1.0+src"
