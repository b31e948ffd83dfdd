# Types of workers/rules.py for its compiled build (Cython pure mode: the
# .py is the source; farm/build.py, docs/building.md): the compiled
# closures call workers/lazyhead.py's tests as C functions.
from workers.lazyhead cimport has_field, is_lazy, last_value, path_ends, path_starts, value_ok
