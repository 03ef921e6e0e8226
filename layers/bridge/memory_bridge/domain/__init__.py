"""Pure values and rules: no I/O, no environment, no clock of its own. Imports only domain/."""
