"""Shared test support: real servers (aiosmtpd, nsd, Postfix) and the integration gate."""
