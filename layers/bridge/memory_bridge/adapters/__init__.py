"""One module per outside system: Memory, the ledger table, the dead-letter queue, Secrets Manager, AWS JSON."""
