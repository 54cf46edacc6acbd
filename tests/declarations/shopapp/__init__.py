"""A stand-in app whose ``omnisend_events`` module the registry must find by itself."""
