"""memory-bridge's operator command line: not part of the Lambda layer, never deployed."""
