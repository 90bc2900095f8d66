"""Generated protobuf packages of the execution service."""
