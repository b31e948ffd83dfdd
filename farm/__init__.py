"""farm: a TCP/HTTP load balancer and reverse proxy in the family of HAProxy.

farm/ holds what the master and the workers share: the config model and
loader, logging, the CLI. It never imports workers/ (see DESIGN.md), but
for `farm explain` and the master's HTTP/2 health checks (farm/h2check.py
uses the sans-IO HTTP/2 codec of workers/h2/: one codec, not two).
"""

__version__ = "0.1.0"
__release_date__ = "2026/11/20"

# Compiled or pure: decided before any per-request module is imported.
from farm import build as _build  # noqa: E402

_build.install()
