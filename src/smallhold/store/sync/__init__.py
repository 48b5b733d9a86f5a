"""Device sync through a relay that only ever holds ciphertext (the relay: smallhold.relay)."""
