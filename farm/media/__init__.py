"""Media through PyAV: encoding, decoding and probing video, the soundtrack, PNG stills."""
