"""The browser softphone of the local stack (`make up`, http://localhost:8000/)."""

from .routes import SoftphoneContext, add_softphone, is_local

__all__ = ["SoftphoneContext", "add_softphone", "is_local"]
