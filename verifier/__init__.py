"""gpt-oss conformance verifier: does an endpoint compute gpt-oss and speak Harmony like the reference?"""

__version__ = "0.1.0"
