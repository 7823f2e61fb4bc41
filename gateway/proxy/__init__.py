"""What a proxy or balancer in front of gateway tells it about the real client: forwarded
headers (forwarded.py) and the PROXY protocol (protocol.py), believed only from the peers
`--forwarded-allow-ips` names (trust.py)."""
