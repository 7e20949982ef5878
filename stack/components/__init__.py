"""Pulumi ComponentResources, one per logical part of the stack."""
