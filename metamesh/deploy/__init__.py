"""Launching: localhost clusters, LAN hosts (systemd units), the edge profile."""
