"""The web console: what the services know, for people, read through their APIs."""
