"""What a trusted load balancer tells gateway about the connection it relays: the PROXY protocol
header (`protocol`), read before TLS and before any HTTP byte."""
