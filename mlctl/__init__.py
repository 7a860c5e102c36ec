"""mlctl: the command-line tool of a multi-tenant Kubeflow machine-learning platform."""

__version__ = "0.1.0"
