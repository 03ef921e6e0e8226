"""One module per outside system: Memory, the ledger table, the dead-letter queue, the secret, AWS."""
