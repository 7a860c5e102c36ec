"""The one Kubernetes layer: the kind table (kinds.py), the client (api.py), its two constructors (client.py),
errors translated to exit codes (errors.py), and training jobs over it (jobs.py). Nothing else in mlctl opens a
connection to an API server."""
