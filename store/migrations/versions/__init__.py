"""The revisions of the optfb schema, oldest first."""
