"""User-facing applications on the toolkit: drawing helpers and the web demo engine."""
