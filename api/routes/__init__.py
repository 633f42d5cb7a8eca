"""One APIRouter per resource: jobs, their results, and the service's metadata."""
