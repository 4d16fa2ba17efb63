"""The SFU side of group calls: Parley as the only client of a Janus VideoRoom."""
