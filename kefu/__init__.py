"""kefu: Chinese customer-service triage. `__version__` comes from the installed package."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kefu")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
