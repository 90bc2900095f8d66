"""Generated protobuf packages of the risk service."""
