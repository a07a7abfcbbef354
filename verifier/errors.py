"""The exception tree. Every error the CLI reports as a one-line cause with exit code 2 derives from
`VerifierError`; anything else is a bug.

    VerifierError
    ├── UsageError          bad arguments, unknown names
    ├── SuiteError          malformed suite files
    ├── GoldenError         corrupt, stale or mismatched golden records
    ├── CheckpointError     missing or malformed checkpoints
    ├── EncodingError       the offline Harmony vocabulary cannot be set up
    └── ProviderError       the endpoint could not be used (transport, HTTP, protocol)
        ├── ProviderHTTPError   the endpoint answered with an HTTP error status
        └── ProviderUnavailable every attempt failed for want of service (outage, rate limit)
"""

from __future__ import annotations


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


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(self, status: int, body: str, url: str):
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"HTTP {status} from {url}: {body[:200]}")


class ProviderUnavailable(ProviderError):
    """Every attempt failed for want of service: connection errors, timeouts, streams cut short,
    HTTP 408/429/502/503/504. An outage says nothing about conformance; `--resume` sends it again."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        self.status = status
        self.body = body
        super().__init__(message)
