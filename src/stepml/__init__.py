"""stepml: a CSV dropped into S3 becomes a validated, versioned model and a prediction API.

This package is imported by the inference Lambda, so it must stay light: nothing here may import
pandas, scikit-learn or boto3 at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"
