"""What farm's modules see of Cython's ``cython`` module when Cython is not
installed: a pure-Python run without the build tools (a package built
where no compiler was, FARM_PURE=1 on such a machine). Only ``compiled``
is read, and it is False. The compiled build never imports this module:
Cython resolves ``import cython`` itself, and ``cython.compiled`` is a
constant True there, so the pure branch of an ``if cython.compiled:`` is
not even compiled (docs/building.md, "One source, two builds")."""

compiled = False
