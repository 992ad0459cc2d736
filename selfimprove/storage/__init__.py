"""Where bytes live, for the library and the lake alike: local folders and S3-compatible stores behind one
interface (`stores.py`), trained checkpoints published to and fetched from them (`checkpoints.py`), and the
local cache folder (`cache.py`). It knows no table, stage or method: the lake's contract (`warehouse/`) is
built on it."""
