"""Authentication and authorisation shared by every service.

- :mod:`.principal`: roles and the scoping rules, pure;
- :mod:`.verifier`: JWT verification against a JWKS (URL or file);
- :mod:`.http`: the FastAPI dependency ``Authenticator.require(*roles)``.
"""

from .principal import ACCOMPANYING, DISTRICT_WIDE, READERS, STAFF, Principal, Role
from .verifier import InvalidToken, KeysUnavailable, TokenVerifier, principal_from_claims

__all__ = [
    "ACCOMPANYING",
    "DISTRICT_WIDE",
    "READERS",
    "STAFF",
    "InvalidToken",
    "KeysUnavailable",
    "Principal",
    "Role",
    "TokenVerifier",
    "principal_from_claims",
]
