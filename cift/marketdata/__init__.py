"""Generated protobuf packages of the marketdata service."""
