"""The background loops of a workflow, one module each."""
