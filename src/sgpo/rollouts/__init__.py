"""The rollouts file: verified (and judged) responses stored for offline training and analysis;
its format and reader (``file.py``) and its writer (``writer.py``)."""
