"""Model serving, pure logic: the InferenceService built from `mlctl serve create`'s options (isvc.py), where a
model comes from (model.py: an s3:// URI or a training job's final model), the inference protocols' requests
(protocol.py), and the statistics of a load test (stats.py). Nothing here talks to a server.
"""
