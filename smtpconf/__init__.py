"""smtpconf: one declarative YAML file for mail relays, accounts and fleets — linted, checked, rendered."""

__version__ = "0.1.0"
