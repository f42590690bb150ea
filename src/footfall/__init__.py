"""footfall: a self-hosted, real-time visitor tracker."""

__version__ = "0.1.0"
