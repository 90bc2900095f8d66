"""Generated protobuf packages of the auth service."""
