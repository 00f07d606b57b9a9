"""sense-license-agent: monitor Qlik Sense access licenses and release unused ones, safely."""

__version__ = "0.1.0"
