"""The data plane (DESIGN.md): imported after farm, whose build module
decides whether the compiled or the pure form of each module runs."""

import farm  # noqa: F401  (farm.build.install() before any workers module)
