"""The risk service: pre-trade checks, limits, trading states and the kill switch."""
