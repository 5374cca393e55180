"""ztwizard: harden Azure IaaS landing zones along Microsoft's Zero Trust guidance."""

__version__ = "0.1.0"
