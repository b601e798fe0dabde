"""The edge router (issue 4): capability routing, canaries, switches, streaming proxy."""
