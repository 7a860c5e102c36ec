"""Login, the token cache, token exchange per cluster and the kubectl exec credential plugin.

The only importer of keycloak and gssapi. cache.py imports neither, so `mlctl token` with a cached token
stays fast.
"""
