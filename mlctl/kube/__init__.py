"""The only importer of the kubernetes client: one ApiClient per cluster, object helpers, error translation."""
