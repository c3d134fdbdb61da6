"""Go / no-go certification: gates, the readiness checklist, the history of certifications and the report."""
