"""The model registry: versions the delivery pipeline registered with their evidence, release channels, fetches."""
