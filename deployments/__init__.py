"""How flows are deployed and served (prefect.yaml points at flows/)."""
