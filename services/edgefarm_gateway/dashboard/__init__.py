"""The web dashboard: server-rendered pages over the same services as the REST API, behind a session cookie."""
