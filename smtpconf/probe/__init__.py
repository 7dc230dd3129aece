"""Live checks: DNS queries and SMTP probes (``smtpconf check``) and ``smtpconf send-test``."""
