"""Security an operator of a SaaS expects: login throttling, MFA, an audit log of privileged writes."""
