"""Device sync through a relay that only ever holds ciphertext (in progress: crypto, relay)."""
