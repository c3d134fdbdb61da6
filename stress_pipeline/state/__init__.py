"""Live state of the system under test: the PostgreSQL ledger, the Redis hot state, disk buffers, the
write path that survives outages, and three-way reconciliation."""

from stress_pipeline.state.reconcile import HotView, LedgerView, ReconciliationReport, reconcile

__all__ = ["HotView", "LedgerView", "ReconciliationReport", "reconcile"]
