"""Platform administration: `mlctl admin sync` (Keycloak -> namespaces, RBAC, quota), install, quota requests.

Modules: objects (what the Kubernetes objects look like), desired (the pure desired state), diff (which
live objects need a server-side apply), lease (one sync at a time, its Lease store),
keycloak_admin (users, groups, members), sync (the reconcile loop), requests (QuotaRequest helpers).
"""
