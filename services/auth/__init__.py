"""The auth service: users, passwords, access and refresh tokens, API keys, signing keys."""
