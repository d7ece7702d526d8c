"""params.yaml: reading it, and the schema its data and feature sections must follow."""
