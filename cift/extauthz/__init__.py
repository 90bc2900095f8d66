"""Generated protobuf packages of the extauthz service."""
