"""The sandbox: the platform's servers built from real upstream components and run as plain processes.

Only `mlctl sandbox ...` and the test fixtures import this package.
"""
