"""homerun's Swarm stack: one topology, rendered as a Pulumi program and as a compose file."""
