"""`mlctl train`'s pure logic: the TrainingJob spec (schema, validation, overrides), rendering to Kubeflow
jobs, and the fit check. Nothing here talks to a server; see docs/job-spec.md."""

from mlctl.jobs.check import check_fit, totals
from mlctl.jobs.quantity import format_quantity, parse_quantity
from mlctl.jobs.render import render
from mlctl.jobs.schema import schema
from mlctl.jobs.spec import Spec, load_spec

__all__ = ["Spec", "check_fit", "format_quantity", "load_spec", "parse_quantity", "render", "schema", "totals"]
