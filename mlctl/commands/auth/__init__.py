"""mlctl login / logout / whoami / token: top-level verbs of the SSO session."""
