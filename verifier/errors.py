"""The exception tree. Every error the CLI reports as a one-line cause with exit code 2 derives from
`VerifierError`; anything else is a bug.

    VerifierError
    ├── UsageError          bad arguments, unknown names
    ├── SuiteError          malformed suite files
    ├── GoldenError         corrupt, stale or mismatched golden records
    ├── CheckpointError     missing or malformed checkpoints
    ├── EncodingError       the offline Harmony vocabulary cannot be set up
    └── ProviderError       the endpoint could not be used; `kind` says how
        ├── ProviderProtocolError   it answered, but not as the protocol says (not JSON, too large)
        ├── ProviderHTTPError       it answered with an HTTP error status
        ├── ProviderUnavailable     every attempt failed for want of service (outage, rate limit)
        └── ProviderUnsupported     it offers no endpoint for what was asked
            ├── ScoringUnsupported      no log-probabilities of given tokens
            └── TokenizeUnsupported     no way to show how it renders a chat request

A provider call that fails is recorded, where it is caught, as a `verifier.observation.Failure` of the
exception's `kind`; checks read that kind rather than the exception or its message.
"""

from __future__ import annotations

from typing import ClassVar, Literal

FailureKind = Literal["unavailable", "unsupported", "http_status", "protocol"]
"""How a provider call failed: no service on any attempt; no such endpoint; an HTTP error status as the
provider's answer; an answer that does not follow the protocol."""


class VerifierError(Exception):
    """Base of all errors that the CLI turns into a one-line message and exit code 2."""


class UsageError(VerifierError):
    """The command line or a configuration value is wrong."""


class SuiteError(VerifierError):
    """A suite's files are missing or malformed."""


class GoldenError(VerifierError):
    """Golden records are missing, corrupt, stale or belong to another suite or checkpoint."""


class CheckpointError(VerifierError):
    """A checkpoint directory is missing or not in a known layout."""


class EncodingError(VerifierError):
    """The offline Harmony encoding could not be prepared."""


class ProviderError(VerifierError):
    """The provider could not be reached or did not speak the expected protocol."""

    kind: ClassVar[FailureKind] = "protocol"
    status: int | None = None
    """The HTTP error status the provider answered with, if any."""
    body: str = ""
    """The body of that answer (scrubbed of the API key)."""
    history: tuple[int | None, ...] = ()
    """The status of every attempt of the request, in order (None: no answer, or one that broke the protocol)."""


class ProviderProtocolError(ProviderError):
    """The provider answered, but not as the protocol says: not JSON, not an object, too large."""


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status."""

    kind = "http_status"

    def __init__(self, status: int, body: str, url: str):
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"HTTP {status} from {url}: {body[:200]}")


class ProviderUnavailable(ProviderError):
    """Every attempt failed for want of service: connection errors, timeouts, streams cut short,
    HTTP 408/429/502/503/504. An outage says nothing about conformance; `--resume` sends it again."""

    kind = "unavailable"

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        self.status = status
        self.body = body
        super().__init__(message)


class ProviderUnsupported(ProviderError):
    """The provider offers no endpoint for what was asked: a capability it lacks, not a failure."""

    kind = "unsupported"


class ScoringUnsupported(ProviderUnsupported):
    """The provider offers no way to get log-probabilities of given tokens."""


class TokenizeUnsupported(ProviderUnsupported):
    """The provider has no endpoint that shows how it renders a chat request."""
