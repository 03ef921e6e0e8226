"""The simple peer that `make bench` measures memory-bridge against. Dev-only: never deployed."""
