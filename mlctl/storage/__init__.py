"""S3 access for mlctl: the only importer of boto3/botocore outside the sandbox (docs/storage.md, docs/artifacts.md).

- layout.py   where a job's runs live (pure): s3://<outputs>/<user>/<job>/<run>/..., run ids, durations
- client.py   the boto3 client from the platform document's `s3` section and the user's Secret; errors
              translated at the edge (AccessDenied -> Forbidden, NoSuchKey -> NotFound, timeouts -> Unavailable)
- transfer.py downloads to `<final>.part` with resume and checks, uploads with multipart, a thread pool,
              progress on stderr

boto3 is imported only inside functions, so `mlctl --help` stays light.
"""
